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
    CommandFailure,
    Metric,
    check_command,
    is_command,
    parse_metric,
    run_command,
)
from deepphoenix.objectives._replication import (
    TrivialQuine,
    printed_text,
    replication_scores,
    train_and_replicate,
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
from deepphoenix.objectives._user import (
    ObjectiveContext,
    ObjectiveFailure,
    ObjectiveUsageError,
    builtin_function,
    call_objective,
    load_objective,
)

__all__ = [
    "BUILTIN_OBJECTIVES",
    "COMMAND_PREFIX",
    "ENTRY_POINT_GROUP",
    "MAX_PICKLED_BYTES",
    "Builtin",
    "CommandFailure",
    "Direction",
    "Metric",
    "ObjectiveContext",
    "ObjectiveFailure",
    "ObjectiveSpec",
    "ObjectiveUsageError",
    "TrivialQuine",
    "builtin_function",
    "call_objective",
    "callable_objective",
    "check_command",
    "fidelity_unit",
    "is_command",
    "load_objective",
    "objective_names",
    "parse_metric",
    "printed_text",
    "read_function",
    "replication_scores",
    "resolve_objective",
    "run_command",
    "ship_callable",
    "train_and_replicate",
    "uses_heldout",
    "uses_task",
]
