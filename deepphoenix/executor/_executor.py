"""The executor seam and the local executor.

An `Executor` runs named worker jobs with the sandbox's guarantees (a process group per
worker, a hard timeout that kills it, a memory limit, a scrubbed offline environment) and
never raises for a job's own failure: exceptions, timeouts and deaths come back as
`JobResult`s. Third parties register a factory ``factory(settings) -> Executor`` under the
``deepphoenix.executors`` entry-point group. ``ray`` is built in but imports Ray only when
it is chosen (``pip install 'deepphoenix[ray]'``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from deepphoenix.errors import DeepPhoenixError
from deepphoenix.registry import Registry
from deepphoenix.sandbox import Job, JobResult, Worker, WorkerPool, WorkerSettings

__all__ = ["ENTRY_POINT_GROUP", "EXECUTORS", "Executor", "ExecutorError", "ExecutorSettings",
           "JobSubmitter", "Lane", "LocalExecutor", "Progress", "Submission", "executor_names",
           "get_executor"]

ENTRY_POINT_GROUP = "deepphoenix.executors"

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


class Executor(Protocol):
    name: str

    def run_all(self, jobs: Iterable[Submission], on_progress: Progress | None = None,
                ) -> Iterator[tuple[Any, JobResult]]:
        """Run the jobs; yield (key, result) in completion order."""
        ...

    def lane(self, name: str) -> Lane:
        """A stateful worker for one purpose (``"proposer"``), closed with the executor."""
        ...

    def close(self) -> None:
        ...

    # Optional: ``submit(job, on_progress) -> Future[JobResult]`` starts one job on the
    # next free worker (the built-ins have it). `JobSubmitter` gives any executor one.


class JobSubmitter:
    """One job at a time onto an executor, as soon as a worker frees: the executor's own
    ``submit`` when it has one (local, ray), else ``run_all`` of one job in a thread of
    this object's own (at most `workers` at once), so a third-party executor that only
    implements the batch seam still serves the asynchronous search loop."""

    def __init__(self, executor: Executor, workers: int) -> None:
        self.executor = executor
        self._native = getattr(executor, "submit", None)
        self._threads: ThreadPoolExecutor | None = None
        if self._native is None:
            self._threads = ThreadPoolExecutor(max_workers=max(1, workers),
                                               thread_name_prefix="deepphoenix-submit")

    def submit(self, job: Submission, on_progress: Progress | None = None) -> Future[JobResult]:
        if self._native is not None:
            found: Future[JobResult] = self._native(job, on_progress)
            return found
        assert self._threads is not None

        def one() -> JobResult:
            for _key, result in self.executor.run_all([job], on_progress=on_progress):
                return result
            raise ExecutorError(f"the {self.executor.name} executor returned no result")

        return self._threads.submit(one)

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)


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


class LocalExecutor:
    """Persistent sandbox workers on this machine (the default)."""

    name = "local"

    def __init__(self, settings: ExecutorSettings) -> None:
        self.settings = settings
        self.pool = WorkerPool(settings.workers, settings.worker, log_dir=settings.log_dir)
        self._lanes: dict[str, Worker] = {}

    def run_all(self, jobs: Iterable[Submission], on_progress: Progress | None = None,
                ) -> Iterator[tuple[Any, JobResult]]:
        return self.pool.run_all(jobs, on_progress=on_progress)

    def submit(self, job: Submission, on_progress: Progress | None = None) -> Future[JobResult]:
        """Start one job on the next free worker; its future holds the result."""
        return self.pool.submit(*job, on_progress=on_progress)

    def lane(self, name: str) -> Lane:
        found = self._lanes.get(name)
        if found is None:
            settings = self.settings.lane
            if settings.log_path is None and self.settings.log_dir is not None:
                settings = replace(settings, log_path=self.settings.log_dir / f"{name}.log")
            found = self._lanes[name] = Worker(settings, name=name)
        return found

    def close(self) -> None:
        for lane in self._lanes.values():
            lane.close()
        self.pool.close()

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ray_executor(settings: ExecutorSettings) -> Executor:
    """The ``ray`` executor, imported only when chosen: Ray is an optional dependency."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ExecutorError("the ray executor needs Ray: pip install 'deepphoenix[ray]'"
                            ) from None
    from deepphoenix.executor._ray import RayExecutor

    return RayExecutor(settings)


EXECUTORS: Registry[Callable[[ExecutorSettings], Executor]] = Registry(
    "executor", ENTRY_POINT_GROUP)
EXECUTORS.register("local", LocalExecutor)
EXECUTORS.register("ray", _ray_executor)


def executor_names() -> list[str]:
    return EXECUTORS.names()


def get_executor(name: str, settings: ExecutorSettings) -> Executor:
    return EXECUTORS.get(name)(settings)
