"""Fault injection: hostile candidates (tests/sandbox/_hostile.py) run in real workers, and
each must be contained and recorded. The cases and their counts are in docs/sandbox.md."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deepphoenix.sandbox import (
    JobStatus,
    NamedJob,
    Worker,
    WorkerPool,
    WorkerSettings,
    confinement,
)
from deepphoenix.sandbox._log import TAIL_BYTES
from deepphoenix.sandbox._reaper import running as _running
from deepphoenix.sandbox._worker import _check, _Forged, default_memory_limit
from tests.sandbox._pids import host_pids

HOSTILE = "tests.sandbox._hostile"
SETTINGS = WorkerSettings(preload=(), threads=1, extra_jobs=(f"{HOSTILE}:*",))
CONFINED = confinement().available




def _survivors(pids: list[int], grace: float = 2.0) -> list[int]:
    deadline = time.monotonic() + grace
    alive = [p for p in pids if _running(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if _running(p)]
    return alive


@pytest.fixture
def worker() -> Iterator[Worker]:
    w = Worker(SETTINGS, name="hostile")
    yield w
    w.close()


def _honest_job_still_runs(worker: Worker) -> None:
    result = worker.run(f"{HOSTILE}:pid")
    assert result.ok and result.value["status"] == "honest", result


# -- 1. forged scores ------------------------------------------------------------------------
@pytest.mark.parametrize("then", ["return", "exit", "hang"])
def test_a_forged_result_is_a_recorded_failure(worker: Worker, then: str) -> None:
    result = worker.run(f"{HOSTILE}:forge", {"then": then}, timeout=30)
    assert not result.ok
    assert result.value is None
    assert result.status is JobStatus.ERROR and result.kind == "protocol", result
    assert "forged or malformed reply" in result.error
    _honest_job_still_runs(worker)


def test_a_child_program_cannot_reach_the_result_channel(worker: Worker) -> None:
    """The channel is close-on-exec: a program the job starts, writing forged results to
    every descriptor it has, only reaches the log."""
    result = worker.run(f"{HOSTILE}:forge", {"in_process": False}, timeout=60)
    assert result.ok and result.value["status"] == "honest", result


@pytest.mark.parametrize("job", ["torn", "garbage"])
def test_a_torn_or_garbage_reply_neither_hangs_nor_scores(worker: Worker, job: str) -> None:
    results = []
    thread = threading.Thread(target=lambda: results.append(
        worker.run(f"{HOSTILE}:{job}", {"then": "hang"}, timeout=5)), daemon=True)
    thread.start()
    thread.join(60)
    assert results, "the parent hung on a torn frame"
    (result,) = results
    assert not result.ok
    assert result.status in (JobStatus.ERROR, JobStatus.TIMEOUT)
    _honest_job_still_runs(worker)


def test_replies_for_another_job_or_out_of_order_are_refused() -> None:
    good = {"type": "result", "id": 3, "seq": 1, "ok": True}
    assert _check(good, 3, 1) is good
    for bad, why in [({**good, "id": 2}, "for job 2"), ({**good, "seq": 0}, "out of order"),
                     ({**good, "seq": 2}, "out of order"), ({**good, "type": "ready"}, "type"),
                     ({**good, "id": "3"}, "for job 3")]:
        with pytest.raises(_Forged, match=why):
            _check(bad, 3, 1)


def test_a_thread_left_behind_retires_the_worker(worker: Worker) -> None:
    first = worker.run(f"{HOSTILE}:pid")
    assert first.ok
    assert worker.run(f"{HOSTILE}:stray_thread").ok
    started = worker.starts
    after = worker.run(f"{HOSTILE}:pid")
    assert after.ok and after.value["status"] == "honest"
    assert worker.starts == started + 1  # a fresh worker ran it


def test_a_value_json_cannot_carry_is_the_jobs_failure(worker: Worker) -> None:
    result = worker.run(f"{HOSTILE}:unsendable")
    assert result.status is JobStatus.ERROR and "cannot be sent" in result.error, result
    before = worker.starts
    _honest_job_still_runs(worker)
    assert worker.starts == before  # the worker survived


def test_only_allowed_jobs_run() -> None:
    with Worker(WorkerSettings(preload=()), name="strict") as w:
        result = w.run(f"{HOSTILE}:pid")  # not on the production allow-list
    assert result.status is JobStatus.ERROR and "not an allowed" in result.error


# -- 2. escaped processes --------------------------------------------------------------------
def _escape(worker: Worker, then: str, timeout: float | None) -> tuple[list[int], object]:
    seen: list[int] = []
    result = worker.run(f"{HOSTILE}:escape", {"count": 3, "children": 1, "then": then},
                        timeout=timeout, on_progress=lambda m: seen.extend(host_pids(
                            worker, [*m["escapees"], m["subprocess"]])))
    return seen, result


@pytest.mark.parametrize("then", ["return", "sleep", "die"])
def test_escaped_processes_die_with_their_job(worker: Worker, then: str) -> None:
    pids, result = _escape(worker, then, timeout=5 if then == "sleep" else 60)
    assert len(set(pids)) == 3 * 2 + 1  # every escapee reported itself
    expected = {"return": JobStatus.OK, "sleep": JobStatus.TIMEOUT, "die": JobStatus.DIED}
    assert result.status is expected[then], result  # type: ignore[attr-defined]
    if then != "die":  # counted (a dead worker's supervisor kills them, uncounted)
        assert result.leftovers >= len(set(pids)), result  # type: ignore[attr-defined]
    assert _survivors(pids) == []
    _honest_job_still_runs(worker)


def test_close_kills_what_a_job_left(worker: Worker) -> None:
    pids, result = _escape(worker, "return", timeout=60)
    assert result.ok and result.leftovers >= len(set(pids))  # type: ignore[attr-defined]
    worker.close()
    assert _survivors(pids) == []


# -- 3. memory limit -------------------------------------------------------------------------
def _address_space(share: int) -> int:
    """A worker's address-space limit for a memory budget of `share`: all of it, or, in
    a confined worker, what its /tmp and /dev/shm (1/16 of the budget each) leave."""
    return share - 2 * (share // 16) if CONFINED else share


def test_the_default_memory_limit_is_a_share_of_ram(tmp_path: Path) -> None:
    share = default_memory_limit(1)
    assert share is not None and share > 2**30
    with Worker(SETTINGS, name="lone") as w:
        result = w.run(f"{HOSTILE}:limits")
    assert result.ok
    limit = _address_space(share)
    assert result.value == {"here": limit, "child": limit}  # programs it starts inherit it
    with WorkerPool(2, SETTINGS) as pool:
        results = dict(pool.run_all([(0, NamedJob(f"{HOSTILE}:limits"), 60.0)]))
    two = default_memory_limit(2)
    assert two is not None and results[0].value["here"] == _address_space(two)


def test_memory_limit_zero_means_none() -> None:
    import resource

    with Worker(WorkerSettings(preload=(), memory_limit=0, extra_jobs=(f"{HOSTILE}:*",)),
                name="nolimit") as w:
        result = w.run(f"{HOSTILE}:limits")
    assert result.value["here"] == resource.RLIM_INFINITY


def test_an_allocation_past_the_limit_is_a_memory_error() -> None:
    settings = WorkerSettings(preload=(), memory_limit=2**30, extra_jobs=(f"{HOSTILE}:*",))
    with Worker(settings, name="hog") as w:
        result = w.run(f"{HOSTILE}:hog", {"bytes": 2 * 2**30}, timeout=60)
        assert result.status is JobStatus.ERROR and result.kind == "memory", result
        assert w.run(f"{HOSTILE}:hog", {"bytes": 2**20}).ok


# -- 4. network ------------------------------------------------------------------------------
def test_name_lookups_and_inet_sockets_are_refused(worker: Worker) -> None:
    result = worker.run(f"{HOSTILE}:lookups")
    assert result.ok, result
    outcome = result.value
    assert outcome.pop("unix socketpair") == "allowed"
    refused = {name for name, what in outcome.items()
               if what.startswith("refused: network access is disabled")}
    assert refused == set(outcome), outcome


@pytest.fixture
def listener() -> Iterator[int]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    yield server.getsockname()[1]
    server.close()


@pytest.mark.parametrize("isolate", [True, False])
def test_a_child_program_cannot_connect_out(listener: int, isolate: bool) -> None:
    settings = WorkerSettings(preload=(), extra_jobs=(f"{HOSTILE}:*",),
                              isolate_network=isolate)
    with Worker(settings, name="netns") as w:
        result = w.run(f"{HOSTILE}:child_connect", {"port": listener}, timeout=60)
        network = w.isolation.get("network", "")
    assert result.ok, result
    if not isolate:  # the control: without a namespace the listener is reachable
        assert result.value["output"] == "connected"
        return
    if not network.endswith("network namespace"):
        pytest.skip(f"no network namespace on this machine: {network}")
    assert result.value["output"].startswith("refused"), result.value


# -- 5. logs ---------------------------------------------------------------------------------
def test_a_spamming_candidate_leaves_a_capped_log(tmp_path: Path) -> None:
    cap = 4 * 2**20
    log = tmp_path / "eval0.log"
    settings = WorkerSettings(preload=(), extra_jobs=(f"{HOSTILE}:*",), log_path=log,
                              log_cap=cap)
    with Worker(settings, name="spam") as w:
        result = w.run(f"{HOSTILE}:spam", {"megabytes": 50}, timeout=120)
        assert result.ok, result
    size = log.stat().st_size
    text = log.read_bytes()
    assert size <= cap, size
    assert size > cap - 2 * TAIL_BYTES  # the head was kept, up to the cap
    assert b"worker log over its cap" in text and b"bytes of worker output dropped" in text
    assert b"the last line of the spam" in text[-TAIL_BYTES:]  # the end is kept too


def test_the_default_cap_is_16_mib_and_a_full_log_rotates(tmp_path: Path) -> None:
    assert WorkerSettings().log_cap == 16 * 2**20
    log = tmp_path / "eval0.log"
    settings = WorkerSettings(preload=(), extra_jobs=(f"{HOSTILE}:*",), log_path=log,
                              log_cap=2**20)
    with Worker(settings, name="spam") as w:
        assert w.run(f"{HOSTILE}:spam", {"megabytes": 4}, timeout=120).ok
        w.kill()
        assert w.run(f"{HOSTILE}:pid").ok  # a new worker on a full log
    assert (tmp_path / "eval0.log.1").stat().st_size <= 2**20
    assert log.stat().st_size < 2**19


def test_a_workspace_is_removed_when_the_parent_is_killed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    script = ("from deepphoenix.sandbox import Worker, WorkerSettings\n"
              "w = Worker(WorkerSettings(preload=()), name='orphan')\n"
              "w.start()\n"
              "print(w.workspace, flush=True)\n"
              "import time; time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              text=True)
    assert parent.stdout is not None
    workspace = Path(parent.stdout.readline().strip())
    assert workspace.is_dir() and workspace.name.startswith("deepphoenix-orphan-")
    (workspace / "model.bin").write_bytes(b"x" * 1000)  # as a job would
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while workspace.exists() and any(workspace.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    # The supervisor emptied it; a confined worker's workspace is a mount point in its
    # sandbox, so the empty folder goes when the next worker starts.
    assert not workspace.exists() or not any(workspace.iterdir()), "the workspace was kept"
    from deepphoenix.sandbox._worker import _remove_orphaned_workspaces

    _remove_orphaned_workspaces()  # what the next worker's start does
    assert not workspace.exists(), "the workspace outlived its parent"
