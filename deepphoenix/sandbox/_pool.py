"""`SlotPool` and `WorkerPool`: jobs spread over slots (local workers, Ray-held ones), one
job per slot at a time, results in completion order."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from deepphoenix.errors import WorkerError
from deepphoenix.sandbox._records import Job
from deepphoenix.sandbox._settings import WorkerSettings
from deepphoenix.sandbox._worker import JobResult, Worker

__all__ = ["SlotPool", "WorkerPool"]


class _Runs(Protocol):
    def run(self, job: Job, *, timeout: float | None = None,
            on_progress: Callable[[dict[str, Any]], None] | None = None) -> JobResult:
        ...


S = TypeVar("S", bound=_Runs)

class SlotPool(Generic[S]):
    """Jobs spread over `slots` (anything with ``run(job, timeout=, on_progress=)``:
    local workers, Ray-held ones), one job per slot at a time; results in completion
    order. The one scheduler behind `WorkerPool` and the Ray executor."""

    def __init__(self, slots: Sequence[S], name: str = "deepphoenix") -> None:
        self.slots = list(slots)
        self._idle: queue.Queue[S] = queue.Queue()
        for slot in self.slots:
            self._idle.put(slot)
        self._threads = ThreadPoolExecutor(max_workers=max(1, len(self.slots)),
                                           thread_name_prefix=name)

    def _run_on_idle(self, key: Any, job: Job, timeout: float | None,
                     on_progress: Callable[[Any, dict[str, Any]], None] | None) -> JobResult:
        slot = self._idle.get()
        try:
            report = None if on_progress is None else (lambda m: on_progress(key, m))
            result: JobResult = slot.run(job, timeout=timeout, on_progress=report)
            return result
        finally:
            self._idle.put(slot)

    def run_all(self, jobs: Iterable[tuple[Any, Job, float | None]],
                on_progress: Callable[[Any, dict[str, Any]], None] | None = None,
                ) -> Iterator[tuple[Any, JobResult]]:
        """Run (key, job, timeout) jobs; yield (key, result) in completion order.
        `on_progress(key, message)` is called from the pool's threads."""
        futures = {
            self._threads.submit(self._run_on_idle, key, job, timeout, on_progress): key
            for key, job, timeout in jobs
        }
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            for future in futures:
                future.cancel()

    def submit(self, key: Any, job: Job, timeout: float | None,
               on_progress: Callable[[Any, dict[str, Any]], None] | None = None,
               ) -> Future[JobResult]:
        """Start one job on the next idle slot (queued while all are busy); its future
        holds the result. What the asynchronous search loop builds on: a job goes in as
        soon as a slot frees, with no batch to wait for."""
        return self._threads.submit(self._run_on_idle, key, job, timeout, on_progress)

    def shutdown(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)


class WorkerPool(SlotPool[Worker]):
    """`size` workers running jobs concurrently; results come back as they complete."""

    def __init__(self, size: int, settings: WorkerSettings | None = None,
                 log_dir: Path | None = None) -> None:
        if size < 1:
            raise WorkerError(f"a worker pool needs at least one worker, got {size}")
        base = settings or WorkerSettings()
        super().__init__([Worker(_with_log(base, log_dir, i), name=f"eval{i}", sharing=size)
                          for i in range(size)])

    @property
    def workers(self) -> list[Worker]:
        return self.slots

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        self.shutdown()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _with_log(settings: WorkerSettings, log_dir: Path | None, index: int) -> WorkerSettings:
    if log_dir is None:
        return settings
    return replace(settings, log_path=log_dir / f"eval{index}.log")
