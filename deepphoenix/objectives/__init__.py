"""Objectives: how a candidate is scored and in which direction. The parent side names and
checks an objective (never running a user's file); the worker side computes it.

Built-ins are `fewshot` (the paper's), `val-loss` and `self-replication` (quines); a user
objective is ``PATH.py:NAME`` or ``package.module:NAME``, called in a worker as
``NAME(program, ctx)``; from Python, a callable is shipped to the worker by value
(`callable_objective`); ``cmd:COMMAND`` with a metric is a project's own command, run in
the candidate's workspace (`_command`).
"""

from deepphoenix.objectives._callable import MAX_PICKLED_BYTES, callable_objective, ship_callable
from deepphoenix.objectives._command import (
    COMMAND_PREFIX,
    Metric,
    check_command,
    is_command,
    parse_metric,
)
from deepphoenix.objectives._spec import (
    BUILTIN_OBJECTIVES,
    ENTRY_POINT_GROUP,
    Builtin,
    Direction,
    ObjectiveSpec,
    fidelity_unit,
    objective_names,
    read_function,
    resolve_objective,
    uses_heldout,
    uses_task,
)

__all__ = [
    "BUILTIN_OBJECTIVES",
    "COMMAND_PREFIX",
    "ENTRY_POINT_GROUP",
    "MAX_PICKLED_BYTES",
    "Builtin",
    "Direction",
    "Metric",
    "ObjectiveSpec",
    "callable_objective",
    "check_command",
    "fidelity_unit",
    "is_command",
    "objective_names",
    "parse_metric",
    "read_function",
    "resolve_objective",
    "ship_callable",
    "uses_heldout",
    "uses_task",
]
