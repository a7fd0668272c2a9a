"""Sandboxed worker processes: where every piece of torch work runs (building a model from
a source, training, sampling, few-shot scoring). Importing this package does not import
torch; the workers do. What a worker contains, and what it does not: docs/sandbox.md.
The job records (what crosses into a worker, and the reports that come back) are here too:
every executor and the confinement read one declaration of a job's paths.

A job's own function (the worker side) needs only what is exported here: the `JobContext`
it is called with (device, workspace, progress, per-worker state), its record, the report
record it returns (`EvalReport`, `TrainReport`, `GenerateReport`) and `failure_text` /
`is_out_of_memory` to describe an exception."""

from deepphoenix.sandbox._child import JobContext, JobFunction, JobTable
from deepphoenix.sandbox._confine import Confinement, confinement
from deepphoenix.sandbox._pool import SlotPool, WorkerPool
from deepphoenix.sandbox._protocol import failure_text, is_out_of_memory
from deepphoenix.sandbox._records import (
    CheckJob,
    EvalJob,
    EvalReport,
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

__all__ = ["DEFAULT_DISK_LIMIT", "CheckJob", "Confinement", "EvalJob", "EvalReport",
           "GenerateJob", "GenerateReport", "GenerationJob", "Job", "JobContext", "JobFunction",
           "JobPaths", "JobResult", "JobStatus", "JobTable", "NamedJob", "SlotPool", "TrainJob",
           "TrainReport", "Worker", "WorkerPool", "WorkerSettings", "as_job", "confinement",
           "default_memory_limit", "failure_text", "is_out_of_memory", "isolation_summary",
           "sandbox_line", "scrubbed_env"]
