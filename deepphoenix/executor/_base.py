"""The executor seam: `Executor`, the base class every executor subclasses, and what it is
told (`ExecutorSettings`).

An executor runs worker jobs with the sandbox's guarantees (a process group per worker, a
hard timeout that kills it, a memory limit, a scrubbed offline environment) and never
raises for a job's own failure: exceptions, timeouts and deaths come back as
`JobResult`s. Adding one is: subclass `Executor`, override `run_all` (a batch of jobs,
results in completion order) and, if it can hold a proposer's model between jobs, `lane`;
register a factory ``factory(settings) -> Executor`` (the class itself will do) under the
``deepphoenix.executors`` entry-point group. `submit` (one job on the next free worker,
what the asynchronous loop calls) has a default that runs `run_all` of one job in a
thread; override it where the executor has a native way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self

from deepphoenix.errors import DeepPhoenixError
from deepphoenix.sandbox import Job, JobResult, WorkerSettings

__all__ = ["Executor", "ExecutorError", "ExecutorSettings", "Lane", "Progress", "Submission"]

# (key, job record, timeout): the key comes back with the job's result.
Submission = tuple[Any, Job, float | None]
Progress = Callable[[Any, dict[str, Any]], None]


class ExecutorError(DeepPhoenixError):
    """An executor cannot run here: its package is not installed (the message says how to
    install it), its cluster cannot be reached, or it lacks a resource the run asks for (a
    GPU). Not a candidate's failure: those are recorded outcomes."""


class Lane(Protocol):
    """A worker that keeps state between its jobs (the proposer's trained model)."""

    def run(self, job: Job, *, timeout: float | None = None,
            on_progress: Callable[[dict[str, Any]], None] | None = None) -> JobResult:
        ...

    def close(self) -> None:
        ...


@dataclass(frozen=True, slots=True)
class ExecutorSettings:
    """What every executor is told: how many evaluation workers, how each is started, and
    where the logs go; and, for executors that place work on a cluster, where the cluster
    is and what each worker reserves there (the local executor ignores those)."""

    workers: int = 1  # evaluation workers
    worker: WorkerSettings = field(default_factory=WorkerSettings)  # evaluation workers'
    lane: WorkerSettings = field(default_factory=WorkerSettings)  # the proposer's worker's
    log_dir: Path | None = None
    address: str | None = None  # a cluster's address, HOST:PORT (None: a local instance)
    gpus_per_worker: float = 0.0  # GPUs an evaluation worker reserves (0.25: 4 share one)
    lane_gpus: float = 0.0  # GPUs the proposer's lane reserves (1: train on a GPU node)
    connect_timeout: float = 30.0  # seconds to reach the cluster before giving up


class Executor:
    """Where sandboxed jobs run. Subclasses call ``super().__init__(settings)``, override
    `run_all`, and override `lane`, `submit` and `close` where they have their own."""

    name = "executor"

    def __init__(self, settings: ExecutorSettings) -> None:
        self.settings = settings
        self._threads: ThreadPoolExecutor | None = None

    def run_all(self, jobs: Iterable[Submission], on_progress: Progress | None = None,
                ) -> Iterator[tuple[Any, JobResult]]:
        """Run the jobs; yield ``(key, result)`` in completion order."""
        raise NotImplementedError(f"{type(self).__name__} must implement run_all")

    def submit(self, job: Submission, on_progress: Progress | None = None) -> Future[JobResult]:
        """Start one job as soon as a worker frees; the future holds its result. The
        default runs `run_all` of the one job in a thread, at most `settings.workers` at
        once."""
        if self._threads is None:
            self._threads = ThreadPoolExecutor(max_workers=max(1, self.settings.workers),
                                               thread_name_prefix=f"deepphoenix-{self.name}")

        def one() -> JobResult:
            for _key, result in self.run_all([job], on_progress=on_progress):
                return result
            raise ExecutorError(f"the {self.name} executor returned no result")

        return self._threads.submit(one)

    def lane(self, name: str) -> Lane:
        """A stateful worker for one purpose (``"proposer"``), closed with the executor.
        The default has none: a proposer that trains a model cannot run on it."""
        raise ExecutorError(f"the {self.name} executor has no lane for the {name}: use a "
                            "proposer that trains no model (random, tpe, gp) or another "
                            "executor")

    def close(self) -> None:
        """Release the workers; subclasses that override it call ``super().close()``."""
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
