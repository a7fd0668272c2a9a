"""Domains relative to the file being searched: ``n_embd`` from a quarter to four times
the file's own value, ``n_layer`` the file's value ± 4.

A site states it in its grammar as ``relative = { times = 4 }`` (or ``[0.5, 2]``: from
half to twice the file's value) or ``relative = { plus = 4 }`` (or ``[-1, 4]``); its
``min``/``max`` then clamp the result and its ``multiple_of`` still applies. The domain is
resolved once, against the program a search starts from (its seed), so it does not drift
as the search moves: every later program is read with the resolved grammar.

Resolving keeps the site's kind consistent: int bounds round inwards (a quarter of 2 layers
is 1), onto the grid of `multiple_of`; a log kind's lower bound stays positive; the
default mutation (when the grammar names none) is chosen for the resolved bounds, as for
an absolute domain. A resolution that cannot be done (no value in the file, a value of 0
or below for a factor, an empty result) raises `SiteError` naming the site.
"""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

from deepphoenix.errors import SiteError
from deepphoenix.grammar._spec import (
    INT_KINDS,
    Domain,
    Kind,
    Relation,
    Relative,
    SiteSpec,
    Value,
    default_operator,
    format_value,
)

__all__ = ["Relation", "Relative", "resolve_site"]


def _ends(kind: Kind, relative: Relative, value: int | float) -> tuple[float, float]:
    """The span around `value`: for ints, exact (in fractions), rounded inwards."""
    if kind in INT_KINDS:
        exact = Fraction(value)
        low, high = Fraction(repr(relative.low)), Fraction(repr(relative.high))
        if relative.relation is Relation.TIMES:
            return math.ceil(exact * low), math.floor(exact * high)
        return math.ceil(exact + low), math.floor(exact + high)
    if relative.relation is Relation.TIMES:
        ends = value * relative.low, value * relative.high
    else:
        ends = value + relative.low, value + relative.high
    return _tidy(ends[0], down=True), _tidy(ends[1], down=False)


def _tidy(x: float, down: bool) -> float:
    """`x` to twelve significant digits (0.0003, not 0.00030000000000000003), unless that
    would narrow the domain: a lower bound never rises, an upper one never falls."""
    short = float(f"{x:.12g}")
    return short if (short <= x if down else short >= x) else x


def resolve_site(spec: SiteSpec, value: Value | None, where: str,
                 grammar: str) -> SiteSpec:
    """`spec` with its relative domain resolved against the file's `value`: the absolute
    domain (within the site's clamps and grid) and, where the grammar names no mutation,
    the default operator for it. `SiteError` when it cannot resolve."""
    relative = spec.relative
    assert relative is not None
    site = f"site {spec.name!r} of grammar {grammar!r}"
    rule = f"a domain {relative.span()} of the file's value"
    if value is None:
        raise SiteError(f"{site} has {rule}, but {where} writes None there; give the site a "
                        "number in the file, or an absolute domain (min, max) in the grammar")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SiteError(f"{site} has {rule}, but {where} holds {value!r}, not a number")
    if relative.relation is Relation.TIMES and value <= 0:
        raise SiteError(f"{site} has {rule}, which needs a value above 0, but {where} has "
                        f"{format_value(value)}; use relative = {{ plus = ... }} or an "
                        "absolute domain (min, max)")
    clamps = spec.domain
    low, high = _ends(spec.kind, relative, value)
    if clamps.low is not None:
        low = max(low, clamps.low)
    if clamps.high is not None:
        high = min(high, clamps.high)
    if spec.kind is Kind.LOG_INT:
        low = max(low, 1)
    grid = clamps.multiple_of
    if grid:  # ints (multiple_of is for int sites): exact integer arithmetic
        low, high = -(-int(low) // grid) * grid, int(high) // grid * grid
    empty = low > high or (spec.kind is Kind.LOG_FLOAT and low <= 0)
    if empty:
        limits = clamps.describe_clamps()
        raise SiteError(f"{site}: {rule} ({format_value(value)} in {where}) leaves no value "
                        f"of the site{' ' + limits if limits else ''}; widen the span or the "
                        "bounds")
    if spec.kind in INT_KINDS:
        low, high = int(low), int(high)
    domain = Domain(low=low, high=high, multiple_of=grid)
    operator = spec.operator
    if relative.default_operator:
        implied = default_operator(spec.kind, low, high, False, grid)
        operator = replace(operator, kind=implied.kind)
    return replace(spec, domain=domain, operator=operator,
                   relative=replace(relative, anchor=value))
