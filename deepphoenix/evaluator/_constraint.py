"""A user constraint, on the parent side: which function a run names with
``--constraint PATH.py:NAME`` (or ``package.module:NAME``, or a Python callable given to
`deepphoenix.search`), checked without running it.

A constraint is a function ``NAME(program, ctx)`` returning ``None`` when a candidate may
be evaluated, or a reason (a string) when it may not. It runs only in a sandboxed worker,
before the candidate takes an evaluation slot, with torch's default device set to
``meta``: a model it builds allocates no weights, so counting parameters, FLOPs or layers
costs milliseconds. ``program`` is the executed candidate's names (read-only, built on the
meta device); ``ctx`` has ``values`` (the candidate's site values), ``params`` (its
``model``'s parameter count, or None) and ``device`` (``"meta"``). Its text is stored in
the run, so a resume uses the same constraint even if the file changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deepphoenix.errors import ConfigError
from deepphoenix.objectives import read_function, ship_callable

__all__ = ["ConstraintSpec", "resolve_constraint"]


@dataclass(frozen=True, slots=True)
class ConstraintSpec:
    """The constraint a run names, with what a worker needs to call it."""

    name: str  # as given: limits.py:small, or module:qualname for a callable
    function: str  # the function's name in its file
    text: str = ""  # the file's text (a file or module constraint)
    origin: str = ""  # the file it was read from
    pickled: str = ""  # a Python callable: its cloudpickle bytes, base64 (never loaded here)

    def to_dict(self) -> dict[str, Any]:
        data = {"name": self.name, "function": self.function, "text": self.text,
                "origin": self.origin}
        if self.pickled:
            data["pickled"] = self.pickled
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConstraintSpec:
        return cls(name=str(data["name"]), function=str(data.get("function", "")),
                   text=str(data.get("text", "")), origin=str(data.get("origin", "")),
                   pickled=str(data.get("pickled", "")))


def resolve_constraint(spec: str | Callable[..., Any]) -> ConstraintSpec:
    """The constraint `spec` names: ``PATH.py:NAME``, ``package.module:NAME`` or a
    callable (shipped by value), checked without running it. Every failure is one
    `ConfigError` line."""
    if callable(spec) and not isinstance(spec, type):
        name, pickled = ship_callable(spec, "constraint")
        return ConstraintSpec(name, name.rpartition(":")[2], origin=f"<callable {name}>",
                              pickled=pickled)
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"Expected a constraint PATH.py:NAME, package.module:NAME or a "
                          f"function (program, ctx) -> reason or None but got "
                          f"constraint={spec!r} (type={type(spec).__name__})")
    text, origin, function = read_function(spec, "constraint")
    return ConstraintSpec(spec, function, text, origin)
