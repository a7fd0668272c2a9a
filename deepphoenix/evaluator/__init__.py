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

__all__ = ["TORCH_PRELOAD", "EvalJob", "EvalResult", "EvalSettings", "EvalStatus", "Evaluator",
           "evaluation_preload", "inconsistency", "static_check"]
