"""Executors: where sandboxed jobs run. The evaluator hands a batch of jobs to
`Executor.run_all` (or, in the asynchronous loop, one at a time to `Executor.submit`); the
learned proposer holds a `Lane` (a worker that keeps state between jobs: the trained
model) for its training stage and its sampling. `local` (persistent sandbox workers on
this machine) and `ray` (the same sandbox workers, each owned by a Ray actor on whichever
node Ray picks; needs ``pip install 'deepphoenix[ray]'``) are built in; others subclass
`Executor` and register by name. `ExecutorOptions` is what a run asks of its executor (its
name, a cluster's address, GPU reservations), validated here."""

from deepphoenix.executor._base import (
    Executor,
    ExecutorError,
    ExecutorSettings,
    Lane,
    Progress,
    Submission,
)
from deepphoenix.executor._local import LocalExecutor
from deepphoenix.executor._options import OPTION_FIELDS, TRAIN_ON, ExecutorOptions
from deepphoenix.executor._registry import (
    ENTRY_POINT_GROUP,
    EXECUTORS,
    executor_names,
    get_executor,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "EXECUTORS",
    "OPTION_FIELDS",
    "TRAIN_ON",
    "Executor",
    "ExecutorError",
    "ExecutorOptions",
    "ExecutorSettings",
    "Lane",
    "LocalExecutor",
    "Progress",
    "Submission",
    "executor_names",
    "get_executor",
]
