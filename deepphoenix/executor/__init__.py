"""Executors: where sandboxed jobs run. The evaluator hands a batch of jobs to
`Executor.run_all`; the learned proposer holds a `Lane` (a worker that keeps state between
jobs: the trained model) for its training stage and its sampling. `local` (persistent
sandbox workers on this machine) and `ray` (the same sandbox workers, each owned by a Ray
actor on whichever node Ray picks; needs ``pip install 'deepphoenix[ray]'``) are built in;
others register by name."""

from deepphoenix.executor._executor import (
    ENTRY_POINT_GROUP,
    Executor,
    ExecutorError,
    ExecutorSettings,
    JobSubmitter,
    Lane,
    LocalExecutor,
    Submission,
    executor_names,
    get_executor,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Executor",
    "ExecutorError",
    "ExecutorSettings",
    "JobSubmitter",
    "Lane",
    "LocalExecutor",
    "Submission",
    "executor_names",
    "get_executor",
]
