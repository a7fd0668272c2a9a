"""Scoring candidates: a cascade of static checks, build, a smoke step and the extended
few-shot run, in sandboxed workers. Importing it does not import torch."""

from deepphoenix.evaluator._evaluator import (
    EVALUATE_JOB,
    EvalResult,
    EvalSettings,
    EvalStatus,
    Evaluator,
    static_check,
)

__all__ = ["EVALUATE_JOB", "EvalResult", "EvalSettings", "EvalStatus", "Evaluator",
           "static_check"]
