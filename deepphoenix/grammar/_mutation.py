"""Mutation operators on single site values: draw, move, enumerate one-move neighbours,
and repair coupled sites after a move (joint moves).

Randomness is explicit: every function takes a `random.Random`.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Collection, Iterator, Mapping, Sequence

from deepphoenix.grammar._expr import EvaluationError
from deepphoenix.grammar._grammar import Grammar
from deepphoenix.grammar._spec import INT_KINDS, Kind, OperatorKind, SiteSpec, Value

__all__ = ["candidates", "draw_value", "move_value", "neighbours", "repair", "round_half_up"]

_MAX_ENUMERATED = 10_000
_MAX_REPAIR = 4_096  # candidate values tried per partner site


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


def _snap(spec: SiteSpec, x: float) -> int:
    """The int nearest `x` on the site's grid (`multiple_of`, else every int)."""
    grid = spec.domain.multiple_of or 1
    return round_half_up(x / grid) * grid


def _nearest_listed(spec: SiteSpec, x: float) -> Value:
    """The listed value (`values = [...]`) nearest `x`; ties go to the smaller."""
    ordered = sorted(spec.domain.values)
    return min(ordered, key=lambda v: abs(v - x))


def draw_value(spec: SiteSpec, rng: random.Random) -> Value:
    """A uniform draw from the site's domain (log-uniform for log kinds, uniform over the
    grid for `multiple_of`, over the list for `values`)."""
    kind, dom = spec.kind, spec.domain
    if kind is Kind.BOOL:
        return rng.random() < 0.5
    if kind is Kind.CATEGORICAL:
        return rng.choice(dom.choices)
    if dom.values:
        return rng.choice(dom.values)
    assert dom.low is not None and dom.high is not None, f"{spec.name} has no bounds"
    if kind in INT_KINDS:
        grid = dom.multiple_of or 1
        low, high = math.ceil(dom.low / grid), math.floor(dom.high / grid)
        if kind is Kind.INT or low == high:
            return rng.randint(low, high) * grid
        for _ in range(64):  # log-uniform, rounded onto the grid, kept inside the bounds
            value = _snap(spec, math.exp(rng.uniform(math.log(dom.low), math.log(dom.high))))
            if dom.contains(kind, value):
                return value
        return rng.randint(low, high) * grid
    if kind is Kind.LOG_FLOAT:
        drawn = math.exp(rng.uniform(math.log(dom.low), math.log(dom.high)))
    else:
        drawn = rng.uniform(dom.low, dom.high)
    tidy = _tidy(drawn)  # unless six digits would round it past a bound written with more
    return tidy if dom.low <= tidy <= dom.high else drawn


def _move_listed(spec: SiteSpec, current: Value, rng: random.Random) -> Value:
    op, ordered = spec.operator, sorted(spec.domain.values)
    assert isinstance(current, int | float)
    if op.kind is OperatorKind.STEP:
        here = bisect.bisect_left(ordered, current)
        if here < len(ordered) and ordered[here] != current:
            # Between two listed values: one step down is the one just below.
            here -= 0 if rng.random() < 0.5 else 1
        target = here + rng.choice((-1, 1)) * rng.randint(1, op.k)
        return ordered[target] if 0 <= target < len(ordered) else current
    if op.kind is OperatorKind.SCALE:
        p = rng.choice(_percent_range(spec)) / 100
        return _nearest_listed(spec, current * (1 + p) if rng.random() < 0.5 else current / (1 + p))
    return rng.choice(spec.domain.values)


def _move_once(spec: SiteSpec, current: Value, rng: random.Random) -> Value:
    op = spec.operator
    if spec.kind is Kind.BOOL:
        return not current
    if spec.kind is Kind.CATEGORICAL:
        return draw_value(spec, rng)
    if spec.domain.values:
        return _move_listed(spec, current, rng)
    if op.kind is OperatorKind.RESAMPLE:
        return draw_value(spec, rng)
    assert isinstance(current, int | float)
    sign = rng.choice((-1, 1))
    if op.kind is OperatorKind.STEP:
        return current + sign * rng.randint(1, op.k) * (spec.domain.multiple_of or 1)
    if spec.kind is Kind.INT:
        pct = rng.choice(_percent_range(spec))
        return _snap(spec, current * (1 + sign * pct / 100))
    if spec.kind is Kind.LOG_INT:
        factor = 1 + rng.choice(_percent_range(spec)) / 100
        return _snap(spec, current * factor if sign > 0 else current / factor)
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
    elif dom.values and op.kind is OperatorKind.STEP:
        ordered = sorted(dom.values)
        assert isinstance(current, int | float)
        low, high = bisect.bisect_left(ordered, current), bisect.bisect_right(ordered, current)
        found = {*ordered[max(0, low - op.k):low], *ordered[high:high + op.k]}
    elif dom.values:
        found = {*dom.values}
    elif kind not in INT_KINDS or not isinstance(current, int):
        return None
    elif op.kind is OperatorKind.STEP:
        grid = dom.multiple_of or 1
        found = {current + d * s * grid for d in range(1, op.k + 1) for s in (-1, 1)}
    elif op.kind is OperatorKind.SCALE and kind is Kind.LOG_INT:
        factors = [1 + p / 100 for p in _percent_range(spec)]
        found = {_snap(spec, current * f) for f in factors}
        found.update(_snap(spec, current / f) for f in factors)
    elif op.kind is OperatorKind.SCALE:
        found = {_snap(spec, current * (1 + s * p / 100)) for p in _percent_range(spec)
                 for s in (-1, 1)}
    else:
        grid = dom.multiple_of or 1
        if dom.low is None or dom.high is None or (dom.high - dom.low) / grid > _MAX_ENUMERATED:
            return None
        found = {v * grid
                 for v in range(math.ceil(dom.low / grid), math.floor(dom.high / grid) + 1)}
    found.discard(current)
    return tuple(sorted(v for v in found if dom.contains(kind, v)))


def candidates(spec: SiteSpec, current: Value) -> Iterator[Value]:
    """The site's other in-domain values, nearest `current` first (at most a few thousand;
    none for floats without listed values, which cannot be enumerated)."""
    kind, dom = spec.kind, spec.domain
    if kind is Kind.BOOL:
        yield not current
        return
    if kind is Kind.CATEGORICAL:
        yield from (c for c in dom.choices if c != current)
        return
    if not isinstance(current, int | float) or isinstance(current, bool):
        return
    if dom.values:
        yield from sorted((v for v in dom.values if v != current), key=lambda v: abs(v - current))
        return
    if kind not in INT_KINDS:
        return
    grid = dom.multiple_of or 1
    base = _snap(spec, current)
    for distance in range(_MAX_REPAIR):
        inside = False
        for value in ((base,) if distance == 0 else (base - distance * grid,
                                                      base + distance * grid)):
            in_bounds = (dom.low is None or value >= dom.low) and (
                dom.high is None or value <= dom.high)
            inside = inside or in_bounds
            if value != current and dom.contains(kind, value):
                yield value
        if not inside and distance > 0:
            return


def repair(grammar: Grammar, values: Mapping[str, Value], partners: Sequence[str],
           present: Collection[str] | None = None) -> dict[str, Value] | None:
    """`values` with one partner site moved to its nearest value that makes the grammar's
    checks pass (partners tried in order), `values` itself when they already pass, or None.

    This is a joint move: ``n_head`` moving from 12 to 16 takes ``n_embd`` from 768 to the
    nearest multiple of 16 when the grammar says ``n_embd % n_head == 0``.
    """
    shown = frozenset(present) if present is not None else None

    def holds(trial: Mapping[str, Value]) -> bool:
        try:
            derived = grammar.derive(trial)
        except EvaluationError:
            return False
        return grammar.check(derived, shown).ok

    if holds(values):
        return dict(values)
    for partner in partners:
        spec = grammar.site(partner)
        for tried, value in enumerate(candidates(spec, values[partner])):
            if tried >= _MAX_REPAIR:
                break
            trial = {**values, partner: value}
            if holds(trial):
                return trial
    return None
