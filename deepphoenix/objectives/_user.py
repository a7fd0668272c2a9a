"""A user objective, on the worker side: compiled from the text stored in the run, called
as ``NAME(program, ctx)``, its return value checked by trusted code.

Only the objective the run names runs, and only inside a sandbox worker.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import math
import sys
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from deepphoenix.errors import DeepPhoenixError

__all__ = ["OBJECTIVE_MODULE", "ObjectiveContext", "ObjectiveFailure", "ObjectiveUsageError",
           "builtin_function", "call_objective", "load_objective"]

OBJECTIVE_MODULE = "__deepphoenix_objective__"


class ObjectiveFailure(Exception):
    """The objective returned something that is not a score."""


class ObjectiveUsageError(DeepPhoenixError):
    """An objective used its context wrongly (``ctx.should_stop()`` after its evaluation
    ended): call it only inside ``NAME(program, ctx)``, while the evaluation runs."""


class ObjectiveContext:
    """What a user objective gets besides the program.

    - ``device``: ``"cpu"`` or ``"cuda[:N]"``, where the model should run;
    - ``seed``: the run's evaluation seed (the same for every candidate);
    - ``workdir``: an empty directory for this evaluation;
    - ``report(step, value)``: an intermediate value (a learning curve), recorded;
    - ``should_stop()``: True once the steps reported reach this evaluation's budget
      (``--fidelity asha``: a low rung's share of ``--max-steps``); the objective then
      returns its score for what it has done so far. Always False at full fidelity.
    - ``stop_step``: that budget in steps (None at full fidelity).
    - ``deadline``: ``time.monotonic()`` by which a built-in objective should stop
      training (None: no soft budget; the job's timeout still kills it).
    """

    def __init__(self, device: str, seed: int, workdir: Path,
                 on_report: Callable[[int, float], None] | None = None,
                 stop_step: int | None = None, deadline: float | None = None) -> None:
        self.device = device
        self.seed = seed
        self.workdir = workdir
        self.stop_step = stop_step
        self.deadline = deadline
        self.reports: list[tuple[int, float]] = []
        self.asked_to_stop = False  # should_stop() said True at least once
        self._on_report = on_report
        self._open = True

    def report(self, step: int, value: float) -> None:
        self.reports.append((int(step), float(value)))
        if self._on_report is not None:
            self._on_report(int(step), float(value))

    def should_stop(self) -> bool:
        """Whether this evaluation has spent its budget (the last reported step reached
        `stop_step`): stop training and return the score so far."""
        if not self._open:
            raise ObjectiveUsageError("ctx.should_stop() was called after the objective's "
                                      "evaluation ended; call it only inside "
                                      "NAME(program, ctx), while the evaluation runs")
        if self.stop_step is None or not self.reports:
            return False
        stop = self.reports[-1][0] >= self.stop_step
        self.asked_to_stop = self.asked_to_stop or stop
        return stop

    def close(self) -> None:
        """The evaluation is over: `should_stop` now raises `ObjectiveUsageError`."""
        self._open = False


def load_objective(text: str, function: str, origin: str,
                   cache: dict[str, Any], pickled: str = "") -> Callable[..., Any]:
    """The objective's function, its file executed once per worker (cached by text); or,
    for a callable shipped by value (`pickled`), unpickled here, in the worker."""
    key = hashlib.sha256(f"{function}\0{text}\0{pickled}".encode()).hexdigest()
    found = cache.get(key)
    if found is None and pickled:
        import cloudpickle

        found = cloudpickle.loads(base64.b64decode(pickled))
        if not callable(found):
            raise ObjectiveFailure(f"the shipped objective {function!r} is not callable")
        cache.clear()
        cache[key] = found
    elif found is None:
        module = types.ModuleType(OBJECTIVE_MODULE)
        module.__file__ = origin
        sys.modules[OBJECTIVE_MODULE] = module
        exec(compile(text, origin or "<objective>", "exec"), module.__dict__)
        found = getattr(module, function, None)
        if not callable(found):
            raise ObjectiveFailure(f"the objective file defines no function {function!r}")
        cache.clear()
        cache[key] = found
    return found


def builtin_function(name: str) -> Callable[..., Any]:
    """The worker-side function of a data-free built-in objective (its table entry)."""
    from deepphoenix.objectives._spec import BUILTIN_OBJECTIVES

    module, _, function = BUILTIN_OBJECTIVES[name].function.partition(":")
    found: Callable[..., Any] = getattr(importlib.import_module(module), function)
    return found


def call_objective(function: Callable[..., Any], program: Mapping[str, Any],
                   ctx: ObjectiveContext) -> tuple[float, dict[str, float]]:
    """Call the objective; its score and its other numeric metrics. `ObjectiveFailure`
    for a return value that is not a finite score."""
    try:
        value = function(program, ctx)
    finally:
        if isinstance(ctx, ObjectiveContext):
            ctx.close()
    metrics: dict[str, float] = {}
    if isinstance(value, Mapping):
        if "score" not in value:
            raise ObjectiveFailure(f"the objective returned a mapping without a 'score' key "
                                   f"(keys: {', '.join(map(str, value)) or 'none'})")
        score = _number("score", value["score"])
        for key, item in value.items():
            if key != "score" and _is_number(item):
                metrics[str(key)] = float(item)
    else:
        score = _number("the objective's return value", value)
    if not math.isfinite(score):
        raise ObjectiveFailure(f"the objective returned a non-finite score ({score})")
    return score, metrics


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    item = getattr(value, "item", None)  # a 0-d tensor or a numpy scalar
    return callable(item) and getattr(value, "ndim", None) == 0


def _number(what: str, value: Any) -> float:
    if _is_number(value):
        return float(value)
    raise ObjectiveFailure(f"{what} is a {type(value).__name__} ({str(value)[:60]!r}); "
                           "expected a number or a mapping with a 'score' key")
