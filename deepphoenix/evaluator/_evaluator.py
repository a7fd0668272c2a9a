"""`Evaluator`: the cascade that scores candidates, from milliseconds to minutes.

static (in this process: the source compiles; the grammar's checks already ran when the
candidate was grounded) → build (execute the program in a worker, find its model and
learning dynamics, count parameters) → smoke (one forward/backward pass: catches OOM and
NaN) → fewshot, or train when the program defines its own train() (one epoch over the
run's first N samples, fixed seed and order) → heldout (``val-loss`` only) → or, for a user
objective or a data-free built-in (``self-replication``), objective
(``NAME(program, ctx)``). Each stage that fails records its stage and reason; a timeout
kills the worker's process group and is recorded at the stage the job had reached. The
score is computed by trusted code; its direction is the objective's.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from deepphoenix.errors import ConfigError, SourceError
from deepphoenix.executor import Executor, Submission
from deepphoenix.mutator import split_bundle
from deepphoenix.objectives import BUILTIN_OBJECTIVES, ObjectiveSpec
from deepphoenix.sandbox import EvalJob, EvalReport, JobResult, JobStatus
from deepphoenix.status import VariantStatus

__all__ = ["EvalJob", "EvalResult", "EvalSettings", "EvalStatus", "Evaluator", "inconsistency",
           "static_check"]


# An evaluation ends scored, rejected (a static check, the parameter limit) or failed
# (raised, hung, ran out of memory, produced NaN or no score): a variant's status.
EvalStatus = VariantStatus


@dataclass(frozen=True, slots=True)
class EvalResult:
    """What evaluating one variant gave: a score with metrics, or the stage and reason it
    failed at (with the traceback when it raised)."""

    hash: str
    status: EvalStatus
    stage: str = ""  # static | build | smoke | fewshot | train | heldout | objective
    reason: str = ""
    traceback: str = ""
    score: float | None = None  # the objective's value (direction: the run's)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalResult:
        """A result from its dict (what a worker sends); a score that is not a finite
        number makes it a failure, never a score."""
        report = EvalReport.from_dict(data)
        status, score, stage, reason = report.status, report.score, report.stage, report.reason
        if status is EvalStatus.SCORED:
            finite = (isinstance(score, int | float) and not isinstance(score, bool)
                      and math.isfinite(score))
            if not finite:
                status, reason = EvalStatus.FAILED, f"no finite score ({score!r})"
                stage, score = stage or "objective", None
        else:
            score = None
        return cls(hash=str(data["hash"]), status=status, stage=stage, reason=reason,
                   traceback=report.traceback, score=None if score is None else float(score),
                   metrics=report.metrics)


@dataclass(frozen=True, slots=True)
class EvalSettings:
    """How every candidate of a run is scored. The paper: the few-shot objective, one
    epoch over the first 1024 refinement pairs."""

    objective: ObjectiveSpec = field(default_factory=lambda: ObjectiveSpec("fewshot"))
    task: str = "refinement"  # refinement | code-lm (built-in objectives only)
    rows: Path | None = None  # the run's rows (built-in objectives only)
    vocab_size: int = 32100  # the refinement tokenizer's (T5 programs are resized to it)
    samples: int = 1024  # first N rows: the few-shot epoch
    heldout: int = 0  # last K rows: the held-out set of val-loss
    batch_size: int = 16  # unless the program sets batch_size
    lr: float = 1e-3  # unless the program sets lr
    weight_decay: float = 0.01  # unless the program sets weight_decay
    seed: int = 0  # the same for every candidate: they differ only in their code
    timeout: float = 600.0  # seconds per candidate, build to last step
    max_params: int | None = None  # a candidate above it is rejected before it trains
    # A run over a project: its folder, the path of a single-file candidate in it (a
    # bundle's text names its own), and the size over which its files are linked.
    project: Path | None = None
    path: str | None = None
    link_bytes: int = 1 << 20

    def validate(self) -> None:
        for name in ("samples", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"Expected int >= 1 but got fewshot {name}={value!r}")
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise ConfigError(f"Expected a positive timeout but got {self.timeout!r}")
        if self.objective.uses_task:
            if self.rows is None or not Path(self.rows).is_file():
                # a setup error, never a candidate's failure
                raise ConfigError(f"{self.rows}: no such data file for the "
                                  f"{self.objective.name} objective")
            if self.objective.uses_heldout and self.heldout < 1:
                raise ConfigError(f"the {self.objective.name} objective needs held-out samples "
                                  "(heldout_samples >= 1)")

    def job(self, source: str, resource: int | None = None) -> EvalJob:
        """The job for `source`; `resource` (a multi-fidelity rung) cuts the budget: the
        first `resource` rows for the built-in objectives (the held-out rows stay the
        same), or `resource` reported steps for a user objective (``ctx.should_stop()``)."""
        builtin = self.objective.unit == "rows"  # self-replication's budget is in steps
        samples = resource if builtin and resource is not None else self.samples
        files = split_bundle(source)
        if files is not None:  # several files: the program executed is the first
            source = files[0][1]
        elif self.path is not None:
            files = ((self.path, source),)
        return EvalJob(source=source, objective=self.objective.to_dict(), task=self.task,
                       rows=str(Path(self.rows).resolve()) if self.rows else "",
                       vocab_size=self.vocab_size, samples=samples,
                       heldout=self.heldout, batch_size=self.batch_size, lr=self.lr,
                       weight_decay=self.weight_decay, seed=self.seed,
                       max_params=self.max_params, timeout=self.timeout,
                       stop_step=None if builtin else resource,
                       project=str(self.project) if self.project is not None else "",
                       files=dict(files or ()), link_bytes=self.link_bytes)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def inconsistency(objective: str, score: float | None, metrics: dict[str, Any]) -> str:
    """Why a built-in objective's score does not agree with the metrics it comes from
    ("" when it does, and for objectives whose score has no such metrics): ``fewshot`` is
    the mean of the epoch's recorded losses (``mean_loss``, ``losses``), ``val-loss`` the
    held-out loss. A value forged without its metrics shows here; a forger who also
    forges the losses does not (docs/sandbox.md)."""
    found = BUILTIN_OBJECTIVES.get(objective)
    if found is None or not found.checkable or score is None:
        return ""
    losses, mean = metrics.get("losses"), metrics.get("mean_loss")
    if not isinstance(losses, list) or not losses or not isinstance(mean, int | float):
        return "its metrics hold no training losses to check the score against"
    try:
        recomputed = sum(float(x) for x in losses) / len(losses)
    except (TypeError, ValueError):
        return "its recorded losses are not numbers"
    if not _close(recomputed, float(mean)):
        return f"its mean loss {mean!r} is not the mean of its losses ({recomputed!r})"
    expected = metrics.get("heldout_loss") if found.heldout else float(mean)
    if not isinstance(expected, int | float) or not _close(float(expected), score):
        name = "held-out loss" if found.heldout else "mean loss"
        return f"its score {score!r} is not its {name} ({expected!r})"
    return ""


def static_check(hash_: str, source: str) -> EvalResult | None:
    """The millisecond stage: the candidate compiles as this Python (never run here); a
    bundle's every file does."""
    try:
        files = split_bundle(source) or (("", source),)
    except SourceError as exc:
        return EvalResult(hash_, EvalStatus.REJECTED, "static", str(exc))
    for path, text in files:
        try:
            compile(text, path or "<candidate>", "exec", dont_inherit=True)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            where = f"{path} " if path else ""
            return EvalResult(hash_, EvalStatus.REJECTED, "static",
                              f"{where}does not compile: {exc}")
    return None


class Evaluator:
    """Scores candidate sources on an executor."""

    def __init__(self, executor: Executor, settings: EvalSettings) -> None:
        settings.validate()
        self.executor = executor
        self.settings = settings

    @property
    def objective(self) -> ObjectiveSpec:
        return self.settings.objective

    def evaluate(self, candidates: Sequence[tuple[str, str]],
                 on_stage: Callable[[str, str], None] | None = None) -> Iterator[EvalResult]:
        """Score (hash, source) pairs; yield each result as soon as it is known."""
        stages: dict[str, str] = {}
        lock = threading.Lock()
        jobs: list[Submission] = []
        for hash_, source in candidates:
            rejected = static_check(hash_, source)
            if rejected is not None:
                yield rejected
                continue
            jobs.append((hash_, self.settings.job(source), self.settings.timeout))

        def progress(key: Any, message: dict[str, Any]) -> None:
            stage = str(message.get("stage", ""))
            if not stage:
                return
            with lock:
                stages[key] = stage
            if on_stage is not None:
                on_stage(key, stage)

        for hash_, job in self.executor.run_all(jobs, on_progress=progress):
            with lock:
                stage = stages.get(hash_, "build")
            yield _to_result(hash_, job, stage, self.objective.name)


    def submit(self, hash_: str, source: str,
               resource: int | None = None) -> Future[EvalResult]:
        """Start scoring one candidate (at a rung's `resource`, or in full) on the next
        free worker; the future holds its result. A candidate that fails the static
        stage comes back as a finished future."""
        done: Future[EvalResult] = Future()
        rejected = static_check(hash_, source)
        if rejected is not None:
            done.set_result(rejected)
            return done
        stage = ["build"]

        def progress(_key: Any, message: dict[str, Any]) -> None:
            if message.get("stage"):
                stage[0] = str(message["stage"])

        started = self.executor.submit((hash_, self.settings.job(source, resource),
                                        self.settings.timeout), progress)

        def finish(future: Future[JobResult]) -> None:
            if done.cancelled():  # the loop stopped waiting (Ctrl-C, a crash): drop it
                return
            try:
                done.set_result(_to_result(hash_, future.result(), stage[0],
                                           self.objective.name))
            except BaseException as exc:
                with contextlib.suppress(InvalidStateError):
                    done.set_exception(exc)

        started.add_done_callback(finish)
        return done


def _to_result(hash_: str, job: JobResult, stage: str, objective: str = "") -> EvalResult:
    """The evaluation a job's result says, with the processes the candidate left behind
    (killed by the sandbox) counted in its metrics as ``leftover_processes``; a built-in
    objective's score that its own metrics contradict is a failure (`inconsistency`)."""
    result = _job_result(hash_, job, stage)
    why = inconsistency(objective, result.score, result.metrics) \
        if result.status is EvalStatus.SCORED else ""
    if why:
        result = EvalResult(hash_, EvalStatus.FAILED, "objective",
                            f"inconsistent result from the worker: {why}",
                            metrics=result.metrics)
    if job.leftovers:
        result = replace(result, metrics={**result.metrics, "leftover_processes": job.leftovers})
    return result


def _job_result(hash_: str, job: JobResult, stage: str) -> EvalResult:
    if job.status is JobStatus.OK:
        value = job.value
        if not isinstance(value, dict):
            return EvalResult(hash_, EvalStatus.FAILED, stage,
                              f"malformed reply from the worker ({type(value).__name__})")
        try:
            return EvalResult.from_dict({**value, "hash": hash_})
        except (KeyError, TypeError, ValueError) as exc:
            return EvalResult(hash_, EvalStatus.FAILED, stage,
                              f"malformed reply from the worker ({exc})")
    if job.status is JobStatus.TIMEOUT:
        return EvalResult(hash_, EvalStatus.FAILED, stage, f"timeout: {job.error}")
    if job.status is JobStatus.DIED:
        return EvalResult(hash_, EvalStatus.FAILED, stage, f"worker died: {job.error}")
    return EvalResult(hash_, EvalStatus.FAILED, stage, job.error, job.traceback)
