"""Scoring candidates: a cascade of static checks, build, a smoke step, the few-shot run
(or the program's own train()) and the objective, in sandboxed workers on an executor; and
the run's constraints (``--max-params``, ``--constraint``), checked in a worker before a
candidate takes an evaluation slot. Importing it does not import torch."""

from deepphoenix.evaluator._check import (
    CHECK_TIMEOUT,
    Checker,
    CheckResult,
    CheckSettings,
    Verdict,
)
from deepphoenix.evaluator._constraint import ConstraintSpec, resolve_constraint
from deepphoenix.evaluator._evaluator import (
    EvalJob,
    EvalResult,
    EvalSettings,
    EvalStatus,
    Evaluator,
    inconsistency,
    static_check,
)
from deepphoenix.evaluator._preload import TORCH_PRELOAD, evaluation_preload
from deepphoenix.evaluator._workspace import SKIPPED as WORKSPACE_SKIPPED
from deepphoenix.evaluator._workspace import build_workspace

__all__ = ["CHECK_TIMEOUT", "TORCH_PRELOAD", "WORKSPACE_SKIPPED", "CheckResult",
           "CheckSettings", "Checker", "ConstraintSpec", "EvalJob", "EvalResult", "EvalSettings",
           "EvalStatus", "Evaluator", "Verdict", "build_workspace", "evaluation_preload",
           "inconsistency", "resolve_constraint", "static_check"]
