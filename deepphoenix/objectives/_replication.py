"""The ``self-replication`` objective, on the worker side: a quine program trains itself
with its own ``train(model, ctx)`` and is scored by how well ``replicate(model)``'s
prediction matches what it should replicate.

A quine program defines ``model`` (a ``torch.nn.Module``), ``train(model, ctx)`` and
``replicate(model) -> (predicted, actual)``, two tensors of the same shape:

- floating tensors: a *weight* quine. Score: relative error, RMSE / std of the actual
  weights (scale-free, so shrinking every weight does not look like progress); RMSE is a
  metric. A *trivial* quine is rejected, with the reason, and never becomes the best:
  weights collapsed towards zero (their RMS fell below 1% of its value before training, or
  every weight is below 1e-6), at least 90% of the weights equal to their median (within
  0.1% of their range: the recurrent quine's constant collapse), or a nearly constant
  output (its spread below 10% of the weights': the near-constant print the write-up's
  recurrent quine makes, which replicates nothing but the weights' mean).
- integer tensors: a *source* quine (character codes, the free-running print and the
  program's own text). Score: 1 - character accuracy; the exact-match length (characters
  right before the first wrong one) is a metric.

The ``ctx`` the program's ``train`` gets has ``should_stop()`` (True once the evaluation's
time budget, 3/4 of its timeout, is spent), ``report(step, value)``, ``device`` and
``seed``. What ``train`` returns is recorded: a whole number as ``train_steps``; a mapping's
finite numbers under their own names (``steps`` as ``train_steps``: the seeds return
``{"steps": …, "best_step": …}``, the step whose weights they kept), never over a metric
this module computes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from deepphoenix.objectives._user import ObjectiveContext, ObjectiveFailure

__all__ = ["QuineContext", "TrivialQuine", "printed_text", "replication_scores",
           "self_replication", "train_and_replicate"]

ZERO_SHRINK = 1e-2  # RMS after / before training below this: the zero quine
ZERO_ABS = 1e-6
CONSTANT_SHARE = 0.9  # this share of weights at their median: a constant collapse
CONSTANT_TOLERANCE = 1e-3  # "at the median": within this fraction of the range
NEAR_CONSTANT = 0.1  # the output's std below this share of the weights': a near-constant print


class TrivialQuine(Exception):
    """The program replicates itself only trivially; `metrics` say how well."""

    def __init__(self, reason: str, metrics: dict[str, float]) -> None:
        super().__init__(reason)
        self.metrics = metrics


class QuineContext:
    """What a quine's ``train(model, ctx)`` gets: its budget and a place to report."""

    def __init__(self, objective: ObjectiveContext) -> None:
        self.device = objective.device
        self.seed = objective.seed
        self._objective = objective
        self.stopped = ""

    def should_stop(self) -> bool:
        """Whether the budget is spent (then stop training and return): the time budget,
        or the steps of a multi-fidelity rung (the steps ``report`` was given)."""
        deadline = self._objective.deadline
        if deadline is not None and time.monotonic() >= deadline:
            self.stopped = "time budget"
            return True
        if self._objective.should_stop():
            self.stopped = f"step budget of {self._objective.stop_step}"
            return True
        return False

    def report(self, step: int, value: float) -> None:
        self._objective.report(step, value)


def self_replication(program: Mapping[str, Any], ctx: ObjectiveContext) -> dict[str, Any]:
    """Train the quine with its own ``train``, then score ``replicate(model)``."""
    pair, before, metrics = train_and_replicate(program, ctx)
    try:
        scores = replication_scores(pair, before)
    except TrivialQuine as trivial:  # recorded with how it trained (its steps, the step kept)
        trivial.metrics = {**metrics, **trivial.metrics}
        raise
    metrics.update(scores)
    return {"score": scores["score"], **metrics}


def train_and_replicate(program: Mapping[str, Any],
                        ctx: ObjectiveContext) -> tuple[Any, float, dict[str, Any]]:
    """Run the quine's ``train`` within the budget, then ``replicate``: (the pair, the
    RMS of the parameters before training, metrics of the training)."""
    import torch

    missing = [] if isinstance(program.get("model"), torch.nn.Module) else ["model"]
    missing += [name for name in ("train", "replicate") if not callable(program.get(name))]
    if missing:
        raise ObjectiveFailure(
            f"the program defines no {', '.join(missing)}: a quine for self-replication "
            "defines model (a torch.nn.Module), train(model, ctx) and replicate(model) -> "
            "(predicted, actual)")
    model = program["model"]
    before = _rms(torch.cat([p.detach().flatten() for p in model.parameters()]))
    began = time.perf_counter()
    context = QuineContext(ctx)
    returned = program["train"](model, context)
    metrics: dict[str, Any] = _train_metrics(returned)
    metrics["train_seconds"] = time.perf_counter() - began
    if context.stopped:
        metrics["stopped"] = context.stopped
    return program["replicate"](model), before, metrics


def _train_metrics(returned: Any) -> dict[str, Any]:
    """What ``train`` returned, as metrics: a whole number is its steps; a mapping's finite
    numbers keep their names (``steps`` becomes ``train_steps``); anything else is not
    recorded."""
    if _number(returned) and isinstance(returned, int):
        return {"train_steps": returned}
    if not isinstance(returned, Mapping):
        return {}
    return {("train_steps" if key == "steps" else key): value
            for key, value in returned.items() if isinstance(key, str) and _number(value)}


def _number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def printed_text(predicted: Any) -> str:
    """A source quine's print as text: its ASCII characters up to the first marker."""
    chars = []
    for code in predicted.flatten().tolist():
        if not 0 <= code < 128:
            break
        chars.append(chr(code))
    return "".join(chars)


def replication_scores(pair: Any, before_rms: float | None = None) -> dict[str, float]:
    """The scores of a ``(predicted, actual)`` pair; `ObjectiveFailure` for a pair that is
    not two tensors of one shape, `TrivialQuine` for a trivial weight quine."""
    import torch

    if not (isinstance(pair, tuple | list) and len(pair) == 2
            and all(isinstance(x, torch.Tensor) for x in pair)):
        raise ObjectiveFailure(
            f"replicate(model) returned {_describe(pair)}; expected (predicted, actual), "
            "two tensors of the same shape")
    predicted, actual = (x.detach().cpu() for x in pair)
    if predicted.shape != actual.shape or actual.numel() == 0:
        raise ObjectiveFailure(
            f"replicate(model) returned tensors of different shapes: predicted "
            f"{tuple(predicted.shape)}, actual {tuple(actual.shape)}; they must match")
    if not predicted.is_floating_point() and not actual.is_floating_point():
        right = predicted == actual
        wrong = (~right).flatten().nonzero()
        prefix = int(wrong[0].item()) if wrong.numel() else actual.numel()
        accuracy = float(right.float().mean().item())
        return {"score": 1.0 - accuracy, "char_accuracy": accuracy,
                "exact_prefix": float(prefix), "exact": float(prefix == actual.numel()),
                "length": float(actual.numel())}
    predicted, actual = predicted.double(), actual.double()
    if not bool(torch.isfinite(predicted).all() and torch.isfinite(actual).all()):
        raise ObjectiveFailure("replicate(model) returned non-finite values")
    rmse = _rms(predicted - actual)
    spread = float(actual.std().item()) if actual.numel() > 1 else 0.0
    low, high = float(actual.min().item()), float(actual.max().item())
    median = actual.flatten().median()
    share = float(((actual - median).abs() <= CONSTANT_TOLERANCE * (high - low))
                  .double().mean().item())
    metrics = {"rmse": rmse, "actual_std": spread, "actual_min": low, "actual_max": high,
               "actual_rms": _rms(actual), "at_median": share,
               "predicted_std": float(predicted.std().item()) if actual.numel() > 1 else 0.0,
               "weights": float(actual.numel())}
    if before_rms is not None:
        metrics["rms_before"] = before_rms
    metrics["score"] = metrics["relative_error"] = rmse / spread if spread > 0 else float("inf")
    reason = _trivial(metrics, before_rms)
    if reason:
        raise TrivialQuine(reason, metrics)
    return metrics


def _trivial(m: dict[str, float], before_rms: float | None) -> str:
    if max(abs(m["actual_min"]), abs(m["actual_max"])) < ZERO_ABS:
        return f"trivial quine: every weight is below {ZERO_ABS:g} (the zero quine)"
    if before_rms and m["actual_rms"] < ZERO_SHRINK * before_rms:
        return (f"trivial quine: the weights collapsed towards zero (RMS {before_rms:.3g} "
                f"before training, {m['actual_rms']:.3g} after)")
    if m["at_median"] >= CONSTANT_SHARE:
        return (f"trivial quine: {m['at_median']:.0%} of the weights are equal to their "
                "median (a constant collapse)")
    if m["predicted_std"] <= CONSTANT_TOLERANCE * m["actual_std"]:
        return "trivial quine: the predicted weights are constant"
    if m["predicted_std"] <= NEAR_CONSTANT * m["actual_std"]:
        return (f"trivial quine: the predicted weights are nearly constant (their spread is "
                f"{m['predicted_std'] / m['actual_std']:.0%} of the weights')")
    return ""


def _rms(x: Any) -> float:
    return float(x.double().pow(2).mean().sqrt().item())


def _describe(value: Any) -> str:
    if isinstance(value, tuple | list):
        kinds = ", ".join(type(v).__name__ for v in value)
        return f"a {type(value).__name__} of {len(value)} ({kinds})"
    return f"a {type(value).__name__}"
