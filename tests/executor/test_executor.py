"""The executor seam: the registry, and the local executor's lanes and jobs."""

from __future__ import annotations

import pytest

from deepphoenix.errors import UnknownNameError
from deepphoenix.executor import ExecutorSettings, LocalExecutor, executor_names, get_executor
from deepphoenix.proposers import get_proposer, proposer_names
from deepphoenix.sandbox import JobStatus, NamedJob, WorkerSettings


def test_registries_name_the_built_ins_and_suggest_close_matches() -> None:
    assert "local" in executor_names()
    assert {"random", "t5"} <= set(proposer_names())
    with pytest.raises(UnknownNameError, match="Did you mean 'local'"):
        get_executor("locale", ExecutorSettings())
    with pytest.raises(UnknownNameError, match="Did you mean 't5'"):
        get_proposer("t6", None)  # type: ignore[arg-type]


def test_the_local_executor_runs_jobs_and_keeps_one_lane_per_name() -> None:
    settings = ExecutorSettings(workers=2, worker=WorkerSettings(preload=()),
                                lane=WorkerSettings(preload=()))
    with LocalExecutor(settings) as executor:
        assert executor.lane("proposer") is executor.lane("proposer")
        assert executor.lane("proposer") is not executor.lane("other")
        jobs = [(k, NamedJob("deepphoenix.evaluator._jobs:no_such_job"), 30.0) for k in ("a", "b")]
        results = dict(executor.run_all(jobs))
    assert set(results) == {"a", "b"}
    assert all(r.status is JobStatus.ERROR and "no_such_job" in r.error
               for r in results.values())


def test_submit_runs_jobs_one_at_a_time_as_workers_free() -> None:
    """The seam of --strategy async: the local executor's own submit, and `JobSubmitter`
    for an executor that only has run_all."""
    from deepphoenix.executor import JobSubmitter

    settings = ExecutorSettings(workers=2, worker=WorkerSettings(preload=()),
                                lane=WorkerSettings(preload=()))
    job = ("k", NamedJob("deepphoenix.evaluator._jobs:no_such_job"), 30.0)

    class BatchOnly:
        name = "batch-only"

        def __init__(self, inner: LocalExecutor) -> None:
            self.run_all = inner.run_all

    with LocalExecutor(settings) as executor:
        futures = [executor.submit(job) for _ in range(3)]
        futures += [JobSubmitter(BatchOnly(executor), 2).submit(job)]  # type: ignore[arg-type]
        results = [f.result(timeout=120) for f in futures]
    assert all(r.status is JobStatus.ERROR and "no_such_job" in r.error for r in results)
