"""Scoring candidates: a cascade of static checks, build, a smoke step, the few-shot run
(or the program's own train()) and the objective, in sandboxed workers on an executor.
Importing it does not import torch."""

from deepphoenix.evaluator._evaluator import (
    EvalJob,
    EvalResult,
    EvalSettings,
    EvalStatus,
    Evaluator,
    static_check,
)

__all__ = ["EvalJob", "EvalResult", "EvalSettings", "EvalStatus", "Evaluator", "static_check"]
