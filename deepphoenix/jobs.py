"""The jobs a sandbox worker runs, and the worker's entry point.

Each job kind is a record (`deepphoenix.sandbox`: `EvalJob`, `CheckJob`, `TrainJob`,
`GenerateJob`, `GenerationJob`) and one function, named here by a real import, so the
table sits above every package whose job it runs and the sandbox below it only serves it.
`Worker` starts ``python -m deepphoenix.jobs``. Each function's module is imported when
its kind first runs, so a worker imports torch only for a job that needs it. A kind that
is not in the table is refused (apart from a worker's `WorkerSettings.extra_jobs`).
"""

from __future__ import annotations

from deepphoenix.sandbox import (
    CheckJob,
    EvalJob,
    GenerateJob,
    GenerationJob,
    JobFunction,
    JobTable,
    TrainJob,
)
from deepphoenix.sandbox._child import serve

__all__ = ["JOBS", "main"]


def _evaluate() -> JobFunction:
    from deepphoenix.evaluator._jobs import evaluate_job

    return evaluate_job


def _check() -> JobFunction:
    from deepphoenix.evaluator._check_job import check_job

    return check_job


def _train() -> JobFunction:
    from deepphoenix.proposers._jobs import train_job

    return train_job


def _generate() -> JobFunction:
    from deepphoenix.proposers._jobs import generate_job

    return generate_job


def _generation() -> JobFunction:
    from deepphoenix.quine._jobs import generation_job

    return generation_job


JOBS: JobTable = {
    EvalJob: _evaluate,
    CheckJob: _check,
    TrainJob: _train,
    GenerateJob: _generate,
    GenerationJob: _generation,
}


def main() -> None:
    serve(JOBS)


if __name__ == "__main__":
    main()
