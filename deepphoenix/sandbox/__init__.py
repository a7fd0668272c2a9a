"""Sandboxed worker processes: where every piece of torch work runs (building a model from
a source, training, sampling, few-shot scoring). Importing this package does not import
torch; the workers do. What a worker contains, and what it does not: docs/sandbox.md."""

from deepphoenix.sandbox._confine import Confinement, confinement
from deepphoenix.sandbox._worker import (
    JobResult,
    JobStatus,
    SlotPool,
    Worker,
    WorkerPool,
    WorkerSettings,
    default_memory_limit,
    isolation_summary,
    scrubbed_env,
)

__all__ = ["Confinement", "JobResult", "JobStatus", "SlotPool", "Worker", "WorkerPool",
           "WorkerSettings", "confinement", "default_memory_limit", "isolation_summary",
           "scrubbed_env"]
