"""Mutation operators on single site values: draw, move, and enumerate one-move neighbours.

Randomness is explicit: every function takes a `random.Random`.
"""

from __future__ import annotations

import math
import random

from deepphoenix.grammar._spec import Kind, OperatorKind, SiteSpec, Value

__all__ = ["draw_value", "move_value", "neighbours", "round_half_up"]

_MAX_ENUMERATED = 10_000


def round_half_up(x: float) -> int:
    """Round to the nearest int, halves away from zero (1331.5 -> 1332), unlike `round`."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def _tidy(x: float) -> float:
    # Six significant digits keep generated sources readable (0.123, not 0.12300000000000001).
    return float(f"{x:.6g}")


def _percent_range(spec: SiteSpec) -> range:
    low = max(1, math.ceil(spec.operator.low * 100 - 1e-9))
    high = max(low, math.floor(spec.operator.high * 100 + 1e-9))
    return range(low, high + 1)


def draw_value(spec: SiteSpec, rng: random.Random) -> Value:
    """A uniform draw from the site's domain (log-uniform for log-floats)."""
    kind, dom = spec.kind, spec.domain
    if kind is Kind.BOOL:
        return rng.random() < 0.5
    if kind is Kind.CATEGORICAL:
        return rng.choice(dom.choices)
    assert dom.low is not None and dom.high is not None, f"{spec.name} has no bounds"
    if kind is Kind.INT:
        return rng.randint(math.ceil(dom.low), math.floor(dom.high))
    if kind is Kind.LOG_FLOAT:
        return _tidy(math.exp(rng.uniform(math.log(dom.low), math.log(dom.high))))
    return _tidy(rng.uniform(dom.low, dom.high))


def _move_once(spec: SiteSpec, current: Value, rng: random.Random) -> Value:
    op = spec.operator
    if op.kind is OperatorKind.RESAMPLE or spec.kind in (Kind.BOOL, Kind.CATEGORICAL):
        if spec.kind is Kind.BOOL:
            return not current
        return draw_value(spec, rng)
    assert isinstance(current, int | float)
    sign = rng.choice((-1, 1))
    if op.kind is OperatorKind.STEP:
        return current + sign * rng.randint(1, op.k)
    if spec.kind is Kind.INT:
        pct = rng.choice(_percent_range(spec))
        return round_half_up(current * (1 + sign * pct / 100))
    p = rng.uniform(op.low, op.high)
    if spec.kind is Kind.LOG_FLOAT:
        return _tidy(current * (1 + p) if sign > 0 else current / (1 + p))
    return _tidy(current * (1 + sign * p))


def move_value(
    spec: SiteSpec, current: Value, rng: random.Random, attempts: int = 32
) -> Value | None:
    """Apply the site's operator once: a new in-domain value, or None when no draw of
    `attempts` lands inside the domain and away from `current`."""
    for _ in range(attempts):
        new = _move_once(spec, current, rng)
        if new != current and spec.domain.contains(spec.kind, new):
            return new
    return None


def neighbours(spec: SiteSpec, current: Value) -> tuple[Value, ...] | None:
    """Every value one operator move away and inside the domain, or None if unbounded."""
    kind, op, dom = spec.kind, spec.operator, spec.domain
    found: set[Value]
    if kind is Kind.BOOL:
        found = {not current}
    elif kind is Kind.CATEGORICAL:
        found = set(dom.choices)
    elif kind is not Kind.INT or not isinstance(current, int):
        return None
    elif op.kind is OperatorKind.STEP:
        found = {current + d * s for d in range(1, op.k + 1) for s in (-1, 1)}
    elif op.kind is OperatorKind.SCALE:
        found = {round_half_up(current * (1 + s * p / 100)) for p in _percent_range(spec)
                 for s in (-1, 1)}
    else:
        if dom.low is None or dom.high is None or dom.high - dom.low > _MAX_ENUMERATED:
            return None
        found = set(range(math.ceil(dom.low), math.floor(dom.high) + 1))
    found.discard(current)
    return tuple(sorted(v for v in found if dom.contains(kind, v)))
