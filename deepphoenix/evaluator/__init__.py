"""Scoring candidates: a cascade of static checks, build, a smoke step, the few-shot run
(or the program's own train()) and the objective, in sandboxed workers on an executor.
Importing it does not import torch."""

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

__all__ = ["TORCH_PRELOAD", "WORKSPACE_SKIPPED", "EvalJob", "EvalResult", "EvalSettings",
           "EvalStatus", "Evaluator", "build_workspace", "evaluation_preload", "inconsistency",
           "static_check"]
