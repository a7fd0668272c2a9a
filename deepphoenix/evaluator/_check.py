"""`Checker`: the constraints a candidate must meet before it takes an evaluation slot,
checked in a sandboxed worker in milliseconds (`_check_job`: the model is built on torch's
meta device, without weights).

Two rules: ``--max-params`` (the parameter count of the program's ``model``, as the
evaluation counts it) and a user constraint (``--constraint PATH.py:NAME``, see
`_constraint`). The run loop checks each new valid candidate, draws again for a slot
whose candidate breaks a rule, and tells the proposer; a check never scores anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from deepphoenix.evaluator._constraint import ConstraintSpec
from deepphoenix.executor import Executor, Submission
from deepphoenix.mutator import split_bundle
from deepphoenix.objectives import ObjectiveSpec
from deepphoenix.sandbox import CheckJob, JobResult, JobStatus

__all__ = ["CHECK_TIMEOUT", "CheckResult", "CheckSettings", "Checker", "Verdict"]

CHECK_TIMEOUT = 120.0  # seconds: a check builds without weights; past this, it hangs


class Verdict(StrEnum):
    PASS = "pass"  # the candidate may be evaluated
    REJECT = "reject"  # it breaks a rule: never evaluated
    ERROR = "error"  # the user's constraint (or objective) is wrong: it raised
    UNKNOWN = "unknown"  # it could not be built to check: its evaluation says why


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What checking one variant said, and why."""

    hash: str
    verdict: Verdict
    rule: str = ""  # max-params | constraint | objective | build (which rule said so)
    reason: str = ""
    traceback: str = ""
    params: int | None = None  # its model's parameter count (None: no torch model)
    built: str = ""  # meta (no weights) | cpu (it needed real tensors)
    seconds: float = 0.0

    @property
    def blocks(self) -> bool:
        """Whether the candidate must not be evaluated."""
        return self.verdict in (Verdict.REJECT, Verdict.ERROR)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        params = data.get("params")
        return cls(hash=str(data["hash"]), verdict=Verdict(str(data["verdict"])),
                   rule=str(data.get("rule") or ""), reason=str(data.get("reason") or ""),
                   traceback=str(data.get("traceback") or ""),
                   params=int(params) if isinstance(params, int) else None,
                   built=str(data.get("built") or ""),
                   seconds=float(data.get("seconds") or 0.0))


@dataclass(frozen=True, slots=True)
class CheckSettings:
    """The rules of a run and what a worker needs to build its candidates as the
    evaluation does (the objective picks the model; the refinement task sizes a T5's
    vocabulary to the run's tokenizer)."""

    objective: ObjectiveSpec = field(default_factory=lambda: ObjectiveSpec("fewshot"))
    task: str = "refinement"
    vocab_size: int = 32100
    seed: int = 0
    max_params: int | None = None
    constraint: ConstraintSpec | None = None
    timeout: float = CHECK_TIMEOUT

    @property
    def active(self) -> bool:
        """Whether there is any rule to check (otherwise no check job ever runs)."""
        return self.max_params is not None or self.constraint is not None

    def job(self, source: str, values: Mapping[str, Any], *, load_objective: bool = False,
            count: bool = True) -> CheckJob:
        """The check of `source`; `count=False` leaves the parameter cap out (the
        model's size is not known yet: a T5 before the run's tokenizer exists). A
        candidate of several files (a bundle's text) is checked as it is evaluated: its
        first file is the program executed."""
        files = split_bundle(source)
        if files is not None:
            source = files[0][1]
        return CheckJob(source=source, objective=self.objective.to_dict(), task=self.task,
                        vocab_size=self.vocab_size, seed=self.seed, values=dict(values),
                        max_params=self.max_params if count else None,
                        constraint=self.constraint.to_dict() if self.constraint else None,
                        load_objective=load_objective)


class Checker:
    """Checks candidates on an executor's evaluation workers."""

    def __init__(self, executor: Executor, settings: CheckSettings) -> None:
        self.executor = executor
        self.settings = settings

    def check(self, candidates: Sequence[tuple[str, str, Mapping[str, Any]]]
              ) -> list[CheckResult]:
        """Check (hash, source, values) triples; the results in the order given."""
        jobs: list[Submission] = [(hash_, self.settings.job(source, values),
                                   self.settings.timeout)
                                  for hash_, source, values in candidates]
        return self._run(jobs, [hash_ for hash_, _, _ in candidates])

    def preflight(self, hash_: str, source: str, values: Mapping[str, Any],
                  count: bool) -> CheckResult:
        """The run's first check, on its seed, before any data is made: the objective's
        file loads, the constraint runs, and (when `count`) the seed is under the cap."""
        job = self.settings.job(source, values, load_objective=True, count=count)
        (result,) = self._run([(hash_, job, self.settings.timeout)], [hash_])
        return result

    def _run(self, jobs: list[Submission], order: list[str]) -> list[CheckResult]:
        if not jobs:
            return []
        found = {key: _to_result(key, job) for key, job in self.executor.run_all(jobs)}
        return [found[hash_] for hash_ in order]


def _to_result(hash_: str, job: JobResult) -> CheckResult:
    if job.status is JobStatus.OK and isinstance(job.value, dict):
        try:
            return CheckResult.from_dict({**job.value, "hash": hash_})
        except (KeyError, TypeError, ValueError) as exc:
            return CheckResult(hash_, Verdict.UNKNOWN, reason=f"malformed check reply ({exc})")
    what = {JobStatus.TIMEOUT: "timed out", JobStatus.DIED: "the worker died"}.get(
        job.status, "failed")
    return CheckResult(hash_, Verdict.UNKNOWN, reason=f"the check {what}: {job.error}",
                       traceback=job.traceback)
