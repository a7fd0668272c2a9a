"""`Evaluator`: the cascade that scores candidates, from milliseconds to minutes.

static (in this process: the source compiles; the grammar's checks already ran when the
candidate was grounded) → build (execute the source in a worker, instantiate the model,
count parameters) → smoke (one forward/backward pass: catches OOM and NaN) → few-shot (one
epoch over the first N refinement pairs, fixed seed and order; score = mean training
loss). Each stage that fails records its stage and reason; a timeout kills the worker's
process group and is recorded at the stage the job had reached.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from deepphoenix.errors import ConfigError
from deepphoenix.sandbox import JobResult, JobStatus, WorkerPool

__all__ = ["EVALUATE_JOB", "EvalResult", "EvalSettings", "EvalStatus", "Evaluator",
           "static_check"]

EVALUATE_JOB = "deepphoenix.evaluator._jobs:evaluate_job"


class EvalStatus(StrEnum):
    SCORED = "scored"
    REJECTED = "rejected"  # failed a static check
    FAILED = "failed"  # raised, hung, ran out of memory or produced NaN


@dataclass(frozen=True, slots=True)
class EvalResult:
    """What evaluating one variant gave: a score with metrics, or the stage and reason it
    failed at (with the traceback when it raised)."""

    hash: str
    status: EvalStatus
    stage: str = ""  # static | build | smoke | fewshot
    reason: str = ""
    traceback: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> float | None:
        """Mean few-shot training loss (lower is better), or None if not scored."""
        if self.status is not EvalStatus.SCORED:
            return None
        value = self.metrics.get("mean_loss")
        return float(value) if value is not None and math.isfinite(value) else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalResult:
        return cls(**{**data, "status": EvalStatus(data["status"])})


@dataclass(frozen=True, slots=True)
class EvalSettings:
    """The few-shot run. The paper: one epoch over the first 1024 pairs."""

    samples: int = 1024  # first N pairs of the refinement dataset
    batch_size: int = 16
    lr: float = 1e-3  # AdamW
    weight_decay: float = 0.01
    seed: int = 0  # the same for every candidate: they differ only in their code
    device: str = "auto"
    timeout: float = 600.0  # seconds per candidate, build to last step

    def validate(self) -> None:
        for name in ("samples", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"Expected int >= 1 but got fewshot {name}={value!r}")
        if not self.timeout > 0:
            raise ConfigError(f"Expected a positive timeout but got {self.timeout!r}")


def static_check(hash_: str, source: str) -> EvalResult | None:
    """The millisecond stage: the candidate compiles as this Python (never run here)."""
    try:
        compile(source, "<candidate>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return EvalResult(hash_, EvalStatus.REJECTED, "static", f"does not compile: {exc}")
    return None


class Evaluator:
    """Scores candidate sources on a worker pool."""

    def __init__(self, pool: WorkerPool, tokens_path: Path, vocab_size: int,
                 settings: EvalSettings) -> None:
        settings.validate()
        self.pool = pool
        self.tokens_path = Path(tokens_path).resolve()
        if not self.tokens_path.is_file():  # a setup error, never a candidate's failure
            raise ConfigError(f"{self.tokens_path}: no such tokenized dataset")
        self.vocab_size = vocab_size
        self.settings = settings

    def _args(self, source: str) -> dict[str, Any]:
        s = self.settings
        return {"source": source, "vocab_size": self.vocab_size,
                "tokens": str(self.tokens_path), "samples": s.samples,
                "batch_size": s.batch_size, "lr": s.lr, "weight_decay": s.weight_decay,
                "seed": s.seed, "device": s.device}

    def evaluate(self, candidates: Sequence[tuple[str, str]],
                 on_stage: Callable[[str, str], None] | None = None) -> Iterator[EvalResult]:
        """Score (hash, source) pairs; yield each result as soon as it is known."""
        stages: dict[str, str] = {}
        lock = threading.Lock()
        jobs = []
        for hash_, source in candidates:
            rejected = static_check(hash_, source)
            if rejected is not None:
                yield rejected
                continue
            jobs.append((hash_, EVALUATE_JOB, self._args(source), self.settings.timeout))

        def progress(key: Any, message: dict[str, Any]) -> None:
            stage = str(message.get("stage", ""))
            with lock:
                stages[key] = stage
            if on_stage is not None:
                on_stage(key, stage)

        for hash_, job in self.pool.run_all(jobs, on_progress=progress):
            with lock:
                stage = stages.get(hash_, "build")
            yield _to_result(hash_, job, stage)


def _to_result(hash_: str, job: JobResult, stage: str) -> EvalResult:
    if job.status is JobStatus.OK:
        value = job.value
        if value.get("status") == EvalStatus.SCORED.value:
            return EvalResult(hash_, EvalStatus.SCORED, metrics=value["metrics"])
        metrics = {"losses": value["losses"]} if "losses" in value else {}
        return EvalResult(hash_, EvalStatus.FAILED, value.get("stage", stage),
                          value.get("reason", ""), value.get("traceback", ""), metrics)
    if job.status is JobStatus.TIMEOUT:
        return EvalResult(hash_, EvalStatus.FAILED, stage, f"timeout: {job.error}")
    if job.status is JobStatus.DIED:
        return EvalResult(hash_, EvalStatus.FAILED, stage, f"worker died: {job.error}")
    return EvalResult(hash_, EvalStatus.FAILED, stage, job.error, job.traceback)
