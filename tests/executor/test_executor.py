"""The executor seam: the registry, and the local executor's lanes and jobs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from deepphoenix.errors import UnknownNameError
from deepphoenix.executor import (
    EXECUTORS,
    Executor,
    ExecutorError,
    ExecutorSettings,
    LocalExecutor,
    Progress,
    Submission,
    executor_names,
    get_executor,
)
from deepphoenix.proposers import get_proposer, proposer_names
from deepphoenix.sandbox import JobResult, JobStatus, NamedJob, WorkerSettings


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
    """The seam of --strategy async: the local executor's own submit, and the base class's
    default submit for an executor that only overrides run_all."""
    settings = ExecutorSettings(workers=2, worker=WorkerSettings(preload=()),
                                lane=WorkerSettings(preload=()))
    job = ("k", NamedJob("deepphoenix.evaluator._jobs:no_such_job"), 30.0)

    class BatchOnly(Executor):
        name = "batch-only"

        def __init__(self, inner: LocalExecutor) -> None:
            super().__init__(inner.settings)
            self.inner = inner

        def run_all(self, jobs: Iterable[Submission], on_progress: Progress | None = None,
                    ) -> Iterator[tuple[Any, JobResult]]:
            return self.inner.run_all(jobs, on_progress=on_progress)

    with LocalExecutor(settings) as executor, BatchOnly(executor) as batch_only:
        futures = [executor.submit(job) for _ in range(3)]
        futures += [batch_only.submit(job)]
        results = [f.result(timeout=120) for f in futures]
    assert all(r.status is JobStatus.ERROR and "no_such_job" in r.error for r in results)


def test_an_executor_is_a_subclass_and_one_without_a_lane_says_so() -> None:
    class NotOne:
        def __init__(self, settings: ExecutorSettings) -> None:
            self.settings = settings

    class NoLane(Executor):
        name = "no-lane"

    EXECUTORS.register("not-one", NotOne)  # type: ignore[arg-type]
    EXECUTORS.register("no-lane", NoLane)
    with pytest.raises(ExecutorError, match="subclass Executor"):
        get_executor("not-one", ExecutorSettings())
    with get_executor("no-lane", ExecutorSettings()) as executor, \
            pytest.raises(ExecutorError, match="no lane for the proposer"):
        executor.lane("proposer")
