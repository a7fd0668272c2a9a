"""The local executor: persistent sandbox workers on this machine (the default)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from deepphoenix.executor._base import Executor, ExecutorSettings, Lane, Progress, Submission
from deepphoenix.sandbox import JobResult, Worker, WorkerPool

__all__ = ["LocalExecutor"]


class LocalExecutor(Executor):
    """Persistent sandbox workers on this machine (the default)."""

    name = "local"

    def __init__(self, settings: ExecutorSettings) -> None:
        super().__init__(settings)
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
        super().close()
