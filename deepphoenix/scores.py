"""How a score is printed: the CLI, the lineage views and the report use one format."""

from __future__ import annotations

import math

__all__ = ["format_score"]


def format_score(value: float, digits: int = 4) -> str:
    """`digits` decimals in the usual range (0.0123, 2.5000), scientific notation outside
    it (1e+308, 1.5e-07), so that no score prints as hundreds of digits."""
    if not math.isfinite(value):
        return str(value)
    if value == 0 or 1e-3 <= abs(value) < 1e6:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}g}"
