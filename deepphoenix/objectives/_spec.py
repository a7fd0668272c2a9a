"""Objectives, on the parent side: how a candidate is scored, in which direction, and
which objective a run names. Nothing here imports torch or executes a user's file: a
user objective is read as text and checked with `ast`; it runs only in a worker.

Built-ins:

- ``fewshot`` (the paper's, the default): the mean training loss of one epoch over the
  run's first N samples, fixed order — how fast the program learns. Minimized.
- ``val-loss``: after that epoch, the mean loss on held-out samples the training never
  saw, in eval mode, each position scored from an input that ends there. Minimized.
- ``self-replication``: no data; the program trains itself with its own ``train()``
  (within the evaluation's time budget), then ``replicate(model)`` gives (predicted,
  actual) and the score is the replication error: RMSE / std of the actual weights for a
  weight quine, 1 - character accuracy for a source quine. Minimized. A trivial quine
  (weights near zero or nearly constant) is recorded as rejected, never the best.

A user objective is ``PATH.py:NAME`` or ``package.module:NAME`` (or a name registered under
the ``deepphoenix.objectives`` entry-point group): a function ``NAME(program, ctx)``
returning a number or a mapping with a ``"score"`` key. It may declare its direction with
``NAME.direction = "maximize"`` at the top level of its file.

A command objective is ``cmd:COMMAND`` with a metric (`_command`): the project's own
training command, run in the candidate's workspace, its score read from what it prints.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import Any

from deepphoenix.errors import ConfigError, SourceError, UnknownNameError, did_you_mean
from deepphoenix.mutator import read_source
from deepphoenix.objectives._command import command_argv, is_command, parse_metric

__all__ = ["BUILTIN_OBJECTIVES", "ENTRY_POINT_GROUP", "Builtin", "Direction", "ObjectiveSpec",
           "objective_names", "read_function", "resolve_objective", "uses_task"]

ENTRY_POINT_GROUP = "deepphoenix.objectives"


class Direction(StrEnum):
    """Which way a score is better."""

    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"

    @classmethod
    def parse(cls, value: str) -> Direction:
        """The direction a stored or typed string names (a `Direction` is returned as is);
        `UnknownNameError` for any other string."""
        try:
            return cls(value)
        except ValueError:
            raise UnknownNameError("direction", value, [d.value for d in cls]) from None

    def better(self, score: float, than: float) -> bool:
        """Whether `score` is strictly better than `than`."""
        return score < than if self is Direction.MINIMIZE else score > than

    @property
    def sign(self) -> float:
        """1 when lower is better, -1 when higher is: `sign * score` is minimized."""
        return 1.0 if self is Direction.MINIMIZE else -1.0

    @property
    def word(self) -> str:
        return "lower" if self is Direction.MINIMIZE else "higher"


@dataclass(frozen=True, slots=True)
class Builtin:
    """A built-in objective: what it measures and how a worker computes it. Every
    built-in is minimized."""

    measures: str
    # True: scored on the run's task data (rows, a few-shot epoch on the program's model);
    # False: the program alone, by `function` called like a user objective.
    uses_task: bool
    function: str = ""  # "module:function", called in a worker as function(program, ctx)
    heldout: bool = False  # scored on held-out rows after the epoch (needs heldout samples)
    # Whether the metrics it reports let the evaluator recompute its score (the mean of
    # the epoch's losses): a score forged without its metrics is caught.
    checkable: bool = False

    @property
    def unit(self) -> str:
        """What a multi-fidelity rung counts: rows of task data, or reported steps."""
        return "rows" if self.uses_task else "steps"


# The one table of built-ins: every other module asks it, never names them.
BUILTIN_OBJECTIVES: dict[str, Builtin] = {
    "fewshot": Builtin("mean training loss of the few-shot epoch", uses_task=True,
                       checkable=True),
    "val-loss": Builtin("held-out loss after the few-shot epoch", uses_task=True,
                        heldout=True, checkable=True),
    "self-replication": Builtin(
        "replication error of a quine after its own train()", uses_task=False,
        function="deepphoenix.objectives._replication:self_replication"),
}


# What every objective that is not a built-in is, as the table's questions go: a function
# (or a command) scored on the program alone, its rungs counted in reported steps.
_NOT_BUILTIN = Builtin("a user's objective", uses_task=False)


def _entry(name: str) -> Builtin:
    return BUILTIN_OBJECTIVES.get(name, _NOT_BUILTIN)


def uses_task(name: str) -> bool:
    """Whether the objective `name` is scored on the run's task data (a built-in that
    trains on rows), so the run must prepare them."""
    return _entry(name).uses_task


def uses_heldout(name: str) -> bool:
    """Whether the objective `name` scores held-out rows (so the run sets some aside)."""
    return _entry(name).heldout


def fidelity_unit(name: str) -> str:
    """What a rung of the objective `name` counts: ``rows`` for a built-in on task data,
    ``steps`` (reported by ``ctx.report``) for every other objective."""
    return _entry(name).unit


@dataclass(frozen=True, slots=True)
class ObjectiveSpec:
    """The objective a run names, with everything a worker needs to compute it.

    For a user objective, `text` is the file's text as read when the run was created: it
    is stored in the run, so a resume uses the same objective even if the file changed.
    """

    name: str  # fewshot | val-loss | the spec as given (score.py:evaluate)
    direction: Direction = Direction.MINIMIZE
    function: str = ""  # user objectives: the function's name
    text: str = ""  # user objectives: the file's text
    origin: str = ""  # user objectives: the file it was read from
    pickled: str = ""  # a Python callable: its cloudpickle bytes, base64 (never loaded here)
    metric: str = ""  # a command objective (cmd:…): where its score is read (--metric)

    @property
    def builtin(self) -> bool:
        return self.name in BUILTIN_OBJECTIVES

    @property
    def command(self) -> bool:
        """A command objective (``cmd:…``): no program is executed in the worker."""
        return is_command(self.name)

    @property
    def uses_task(self) -> bool:
        """Scored on the run's task data (`fewshot`, `val-loss`)."""
        return uses_task(self.name)

    @property
    def uses_heldout(self) -> bool:
        """Scored on held-out rows (`val-loss`)."""
        return uses_heldout(self.name)

    @property
    def unit(self) -> str:
        """What a multi-fidelity rung counts for this objective (`fidelity_unit`)."""
        return fidelity_unit(self.name)

    def to_dict(self) -> dict[str, Any]:
        data = {"name": self.name, "direction": self.direction.value,
                "function": self.function, "text": self.text, "origin": self.origin}
        if self.pickled:
            data["pickled"] = self.pickled
        if self.metric:
            data["metric"] = self.metric
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectiveSpec:
        direction = Direction.parse(str(data.get("direction", Direction.MINIMIZE)))
        return cls(name=str(data["name"]), direction=direction,
                   function=str(data.get("function", "")), text=str(data.get("text", "")),
                   origin=str(data.get("origin", "")), pickled=str(data.get("pickled", "")),
                   metric=str(data.get("metric", "")))


def _entry_points() -> dict[str, str]:
    return {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def objective_names() -> list[str]:
    return sorted(set(BUILTIN_OBJECTIVES) | set(_entry_points()))


def resolve_objective(spec: str, direction: str | None = None,
                      metric: str | None = None) -> ObjectiveSpec:
    """The objective `spec` names, checked without running it; `direction` (when given)
    overrides what a user objective declares; `metric` is where a command objective's
    score is read. Every failure is one line."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"Expected an objective name or PATH.py:NAME but got {spec!r}")
    chosen = Direction.parse(direction) if direction is not None else None
    if is_command(spec):
        command_argv(spec)
        if not metric:
            raise ConfigError(f"objective {spec!r} needs --metric: where its score is read, "
                              "a regular expression with one group (e.g. 'val loss "
                              "([0-9.]+)') or json:PATH:KEY")
        parse_metric(metric)
        return ObjectiveSpec(spec, chosen or Direction.MINIMIZE, metric=metric)
    if metric:
        raise ConfigError(f"--metric reads the output of a command objective (cmd:…); "
                          f"objective {spec!r} is not one")
    if spec in BUILTIN_OBJECTIVES:
        if chosen is Direction.MAXIMIZE:
            raise ConfigError(f"the {spec!r} objective is a loss and is minimized; "
                              "--direction maximize is for your own objective")
        return ObjectiveSpec(spec)
    target = _entry_points().get(spec, spec)
    where, colon, function = target.rpartition(":")
    if not colon or not where or not function:
        raise UnknownNameError("objective", spec, [*objective_names(), "PATH.py:NAME",
                                                   "package.module:NAME"])
    origin, text = _objective_text(where)
    declared = _check_function(text, function, origin)
    return ObjectiveSpec(spec, chosen or declared or Direction.MINIMIZE, function, text,
                         origin)


def read_function(spec: str, role: str) -> tuple[str, str, str]:
    """The file text, origin and function name of ``PATH.py:NAME`` or
    ``package.module:NAME``, a function ``NAME(program, ctx)`` checked with `ast` (never
    run here); `role` names it in every message ("constraint")."""
    where, colon, function = spec.rpartition(":") if isinstance(spec, str) else ("", "", "")
    if not colon or not where or not function:
        raise ConfigError(f"Expected {role}=PATH.py:NAME or package.module:NAME but got "
                          f"{spec!r}")
    origin, text = _objective_text(where, role)
    _check_function(text, function, origin, role)
    return text, origin, function


def _objective_text(where: str, role: str = "objective") -> tuple[str, str]:
    """The text of the file an objective lives in: a path, or an importable module."""
    if where.endswith(".py") or "/" in where or Path(where).exists():
        try:
            return str(Path(where).resolve()), read_source(where)
        except SourceError as exc:
            raise ConfigError(f"{role} file: {exc}") from None
    try:
        found = importlib.util.find_spec(where)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"{role} module {where!r} cannot be found ({exc})") from None
    if found is None or not found.origin or not found.origin.endswith(".py"):
        raise ConfigError(f"{role} module {where!r} cannot be found as a Python file; "
                          "give PATH.py:NAME or an importable package.module:NAME")
    return found.origin, read_source(found.origin)


def _check_function(text: str, name: str, origin: str,
                    role: str = "objective") -> Direction | None:
    """Check that `text` defines ``name(program, ctx)`` at its top level; the direction
    it declares (``name.direction = "maximize"``), if any. `role` names the function in
    the messages (an objective, a constraint)."""
    try:
        tree = ast.parse(text, filename=origin)
    except SyntaxError as exc:
        raise ConfigError(f"{origin}:{exc.lineno}:{exc.offset}: syntax error in the "
                          f"objective file: {exc.msg}") from None
    functions = {node.name: node for node in tree.body
                 if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    node = functions.get(name)
    if node is None:
        known = sorted(functions)
        listing = f" (it defines {', '.join(known)})" if known else " (it defines no function)"
        raise ConfigError(f"{origin} has no function {name!r}{listing}."
                          f"{did_you_mean(name, known)}")
    if isinstance(node, ast.AsyncFunctionDef):
        raise ConfigError(f"{origin}: {name} is async; {_article(role)} is a plain "
                          f"function {name}(program, ctx)")
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    required = len(positional) - len(args.defaults)
    takes_two = len(positional) >= 2 or args.vararg is not None
    required_kwonly = [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
                       if d is None]
    if required > 2 or not takes_two or required_kwonly:
        shown = ", ".join(a.arg for a in positional) or "no positional parameters"
        raise ConfigError(f"{origin}: {name}({shown}) has the wrong signature; "
                          f"{_article(role)} is called as {name}(program, ctx)")
    return _declared_direction(tree, name, origin)


def _article(role: str) -> str:
    return f"{'an' if role[:1] in 'aeiou' else 'a'} {role}"


def _declared_direction(tree: ast.Module, name: str, origin: str) -> Direction | None:
    for node in tree.body:
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target = node.targets[0]
        if (isinstance(target, ast.Attribute) and target.attr == "direction"
                and isinstance(target.value, ast.Name) and target.value.id == name):
            value = node.value
            if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
                raise ConfigError(f"{origin}:{node.lineno}: {name}.direction must be the "
                                  "string 'minimize' or 'maximize'")
            return Direction.parse(value.value)
    return None

