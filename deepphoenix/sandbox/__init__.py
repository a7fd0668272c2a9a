"""Sandboxed worker processes: where every piece of torch work runs (building a model from
a source, training, sampling, few-shot scoring). Importing this package does not import
torch; the workers do. What a worker contains, and what it does not: docs/sandbox.md.
The job records (what crosses into a worker, and the reports that come back) are here too:
every executor and the confinement read one declaration of a job's paths."""

from deepphoenix.sandbox._confine import Confinement, confinement
from deepphoenix.sandbox._pool import SlotPool, WorkerPool
from deepphoenix.sandbox._records import (
    CheckJob,
    EvalJob,
    GenerateJob,
    GenerateReport,
    GenerationJob,
    Job,
    JobPaths,
    NamedJob,
    TrainJob,
    TrainReport,
    as_job,
)
from deepphoenix.sandbox._settings import (
    DEFAULT_DISK_LIMIT,
    WorkerSettings,
    default_memory_limit,
    isolation_summary,
    sandbox_line,
    scrubbed_env,
)
from deepphoenix.sandbox._worker import JobResult, JobStatus, Worker

__all__ = ["DEFAULT_DISK_LIMIT", "CheckJob", "Confinement", "EvalJob", "GenerateJob",
           "GenerateReport", "GenerationJob", "Job", "JobPaths", "JobResult", "JobStatus",
           "NamedJob", "SlotPool", "TrainJob", "TrainReport", "Worker", "WorkerPool",
           "WorkerSettings", "as_job", "confinement", "default_memory_limit",
           "isolation_summary", "sandbox_line", "scrubbed_env"]
