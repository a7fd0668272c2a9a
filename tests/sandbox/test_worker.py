"""Real worker processes: isolation, timeouts that kill the process group, deaths, memory
limits, no network, state kept between jobs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from deepphoenix.sandbox import JobStatus, NamedJob, Worker, WorkerPool, WorkerSettings
from deepphoenix.sandbox._reaper import running as _running
from tests.sandbox._pids import host_pids

DIAG = "deepphoenix.sandbox._diagnostics"
JOBS = (f"{DIAG}:*",)  # test-only jobs, added to the worker's allow-list




@pytest.fixture(scope="module")
def worker() -> Worker:
    w = Worker(WorkerSettings(threads=1, memory_limit=3 * 2**30, extra_jobs=JOBS), name="test")
    yield w
    w.close()


def test_worker_is_isolated(worker: Worker) -> None:
    result = worker.run(f"{DIAG}:describe")
    assert result.ok, result.error
    info = result.value
    assert info["pid"] != os.getpid()
    assert info["pgid"] == info["pid"]  # its own process group
    assert info["cwd"] != os.getcwd() and "deepphoenix-test-" in info["cwd"]
    env = info["env"]
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    assert not any(k.lower() in ("http_proxy", "https_proxy") for k in env)
    assert env["HOME"].startswith(info["cwd"])
    assert info["threads"] == 1
    assert info["device"] == ("cuda" if info["cuda"] else "cpu")  # "auto" resolves


def test_network_is_refused(worker: Worker) -> None:
    result = worker.run(f"{DIAG}:connect", {"host": "127.0.0.1", "port": 9})
    assert result.ok
    assert result.value["connected"] is False
    assert "network access is disabled" in result.value["error"]


def test_state_persists_between_jobs(worker: Worker) -> None:
    worker.run(f"{DIAG}:remember", {"value": 41})
    assert worker.run(f"{DIAG}:remember", {"value": 42}).value == {"before": 41}


def test_job_exception_is_a_result(worker: Worker) -> None:
    result = worker.run(f"{DIAG}:fail", {"message": "boom"})
    assert result.status is JobStatus.ERROR
    assert result.error == "ValueError: boom"
    assert "Traceback" in result.traceback
    assert worker.run(f"{DIAG}:remember", {"value": 1}).ok  # the worker survived


def test_only_allowed_jobs_run(worker: Worker) -> None:
    for name in ("os:system", "deepphoenix.sandbox._child:serve",
                 "deepphoenix.evaluator._jobs:_failure", "deepphoenix.jobs:main",
                 "evaluate-anything", "train_job"):
        result = worker.run(name, {"command": "true"})
        assert result.status is JobStatus.ERROR and "not an allowed" in result.error, name


def test_memory_limit(worker: Worker) -> None:
    result = worker.run(f"{DIAG}:allocate", {"bytes": 4 * 2**30})
    assert result.status is JobStatus.ERROR and result.kind == "memory"
    assert worker.run(f"{DIAG}:allocate", {"bytes": 2**20}).ok


def test_timeout_kills_the_process_group_and_a_new_worker_starts(worker: Worker) -> None:
    before = worker.starts
    child_seen: list[int] = []
    began = time.monotonic()
    result = worker.run(f"{DIAG}:sleep", {"seconds": 60, "spawn": True}, timeout=2,
                        on_progress=lambda m: child_seen.extend(host_pids(worker,
                                                                          [m["child"]])))
    assert result.status is JobStatus.TIMEOUT
    assert time.monotonic() - began < 20
    assert child_seen and child_seen[0] > 0
    time.sleep(0.5)
    assert not _running(child_seen[0])  # the job's own child died with the group
    assert worker.run(f"{DIAG}:remember", {"value": 1}).ok
    assert worker.starts == before + 1


def test_a_dying_worker_takes_only_its_job(worker: Worker) -> None:
    result = worker.run(f"{DIAG}:die", {"code": 3})
    assert result.status is JobStatus.DIED and "exited with code 3" in result.error
    assert worker.run(f"{DIAG}:remember", {"value": 1}).ok


def test_workspace_is_removed_on_close() -> None:
    w = Worker(WorkerSettings(preload=(), extra_jobs=JOBS), name="tmp")
    assert w.run(f"{DIAG}:remember", {"value": 1}).ok
    workspace = w.workspace
    assert workspace is not None and workspace.exists()
    w.close()
    assert not workspace.exists()


def test_pool_runs_jobs_and_logs(tmp_path: Path) -> None:
    with WorkerPool(2, WorkerSettings(preload=(), extra_jobs=JOBS), log_dir=tmp_path) as pool:
        jobs = [(i, NamedJob(f"{DIAG}:remember", {"value": i}), 30.0) for i in range(6)]
        results = dict(pool.run_all(jobs))
    assert sorted(results) == list(range(6))
    assert all(r.ok for r in results.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval0.log", "eval1.log"]


def test_a_worker_that_does_not_start_in_time_is_a_worker_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from deepphoenix.errors import WorkerError
    from deepphoenix.sandbox import _worker

    monkeypatch.setattr(_worker, "_START_TIMEOUT", 0.05)  # importing torch takes seconds
    slow = Worker(WorkerSettings(threads=1), name="slow")
    with pytest.raises(WorkerError, match="did not start within"):
        slow.start()
    assert not slow.alive
    slow.close()
