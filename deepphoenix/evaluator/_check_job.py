"""The check job, run inside a sandbox worker: may this candidate take an evaluation slot?

The program is executed with torch's default device set to ``meta`` (parameters get a
shape and no storage), so a model of any size builds in milliseconds and allocates
nothing; a program that cannot build there (it copies a tensor to a device, reads a
value) is built again on the CPU. Then its ``model``'s parameters are counted against
``--max-params`` and the user's constraint, if any, is called as ``NAME(program, ctx)``,
still on the meta device. At a run's start (``load_objective``) the objective's file is
also loaded, so an objective that cannot import fails the run within seconds. A command
objective (``cmd:…``) never executes the program in its evaluation; it is executed here
only to be checked (its ``model`` counted, the constraint given what it defines), as a
user objective's program is (a candidate of several files: its first file).

It never raises for a candidate's failure. It returns ``{"verdict": …, "rule": …,
"reason": …, "traceback": …, "params": …, "built": …, "seconds": …}`` where the verdict is

- ``pass``: the candidate may be evaluated;
- ``reject``: it breaks a rule (``max-params`` or ``constraint``), said in `reason`;
- ``error``: the constraint raised or returned something that is not a reason, or (at a
  run's start) the objective did not load (rule ``objective``): the user's code is wrong;
- ``unknown``: the program does not build even on the CPU (rule ``build``); its
  evaluation records why.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from deepphoenix.evaluator._constraint import ConstraintSpec
from deepphoenix.evaluator._preload import standard_only
from deepphoenix.objectives import ObjectiveSpec, load_objective
from deepphoenix.sandbox import CheckJob, JobContext, failure_text
from deepphoenix.training import (
    BuildFailure,
    count_parameters,
    counted_model,
    exec_program,
    is_module,
)

__all__ = ["ConstraintContext", "check_job"]

_REASON_LIMIT = 500  # a reason is shown on one line: a constraint's essay is cut


@dataclass(frozen=True, slots=True)
class ConstraintContext:
    """What a constraint gets besides the program: the candidate's site values, its
    ``model``'s parameter count (None when it defines no torch module) and the device
    the program was built on (``"meta"``: no weights; ``"cpu"`` when it could not be)."""

    values: Mapping[str, Any] = field(default_factory=dict)
    params: int | None = None
    device: str = "meta"


def check_job(job: CheckJob, ctx: JobContext) -> dict[str, Any]:
    began = time.perf_counter()
    objective = ObjectiveSpec.from_dict(job.objective)
    constraint = ConstraintSpec.from_dict(job.constraint) if job.constraint else None

    def verdict(verdict: str, rule: str = "", reason: str = "", trace: str = "",
                **extra: Any) -> dict[str, Any]:
        return {"verdict": verdict, "rule": rule, "reason": reason, "traceback": trace,
                "seconds": time.perf_counter() - began, **extra}

    if job.load_objective and not objective.builtin and not objective.command:
        try:
            load_objective(objective.text, objective.function, objective.origin,
                           ctx.state.setdefault("objective", {}), objective.pickled)
        except BaseException as exc:
            message, trace = failure_text(exc)
            return verdict("error", "objective", message, trace)
    torch = _torch(job.source, constraint)
    device = "meta" if torch is not None else "cpu"
    try:
        with _default_device(torch, device):
            program, model = _build(job, objective, ctx)
    except BaseException as exc:
        if torch is None or isinstance(exc, BuildFailure):  # the same on any device
            message, trace = failure_text(exc)
            return verdict("unknown", "build", message, trace)
        device = "cpu"  # it needs real tensors: build it for real
        try:
            program, model = _build(job, objective, ctx)
        except BaseException as again:
            message, trace = failure_text(again)
            return verdict("unknown", "build", message, trace)
    params = count_parameters(model) if is_module(model) else None
    found: dict[str, Any] = {"params": params, "built": device}
    if job.max_params is not None and params is not None and params > job.max_params:
        return verdict("reject", "max-params",
                       f"{params:,} parameters, over the limit of {job.max_params:,}", **found)
    if constraint is None:
        return verdict("pass", **found)
    try:
        function = load_objective(constraint.text, constraint.function, constraint.origin,
                                  ctx.state.setdefault("constraint", {}), constraint.pickled)
        with _default_device(torch, device):
            answer = function(program, ConstraintContext(dict(job.values), params, device))
    except BaseException as exc:
        message, trace = failure_text(exc)
        return verdict("error", "constraint", f"{constraint.name} raised {message}", trace,
                       **found)
    if answer is None:
        return verdict("pass", **found)
    if isinstance(answer, str) and answer.strip():
        reason = " ".join(answer.split())
        if len(reason) > _REASON_LIMIT:
            reason = reason[:_REASON_LIMIT - 1] + "…"
        return verdict("reject", "constraint", reason, **found)
    return verdict("error", "constraint",
                   f"{constraint.name} returned {str(answer)[:60]!r} "
                   f"({type(answer).__name__}); a constraint returns None to accept a "
                   "candidate or a reason (a non-empty string) to reject it", **found)


def _torch(source: str, constraint: ConstraintSpec | None) -> Any:
    """torch, when the program or the constraint may reach it (or it is loaded already);
    None for plain Python, which then builds as it is (no meta device to set)."""
    plain = standard_only(source) and (constraint is None or (
        bool(constraint.text) and not constraint.pickled and standard_only(constraint.text)))
    if plain and "torch" not in sys.modules:
        return None
    import torch

    return torch


@contextlib.contextmanager
def _default_device(torch: Any, device: str) -> Iterator[None]:
    if torch is None or device != "meta":
        yield
        return
    with torch.device("meta"):
        yield


def _build(job: CheckJob, objective: ObjectiveSpec, ctx: JobContext) -> tuple[Any, Any]:
    """The executed program and the model a run counts (as the evaluation job picks it:
    the seq2seq model at the run's vocabulary on the refinement task, the program's
    ``model`` otherwise; None when it defines no model for a user objective)."""
    program = exec_program(job.source, ctx.workspace, job.seed, job.vocab_size)
    return program, counted_model(program, objective.uses_task, job.task, job.vocab_size)
