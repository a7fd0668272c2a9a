"""Infer a grammar from any source: every numeric or bool literal bound to a name,
attribute, keyword, class field or parameter default becomes a site.

Default domains (v is the value found):

- int v > 0: ``[max(1, v // 4), max(4 v, v + 8)]``; step ±1 when that range is at most 32
  wide, else scale ±1–50%. int 0: ``[0, 8]``, step ±1. int v < 0: ``[min(4 v, v - 8), -1]``.
- float in (0, 1) and at least 0.01: ``[v / 4, min(1, 4 v)]``; below 0.01 or above 1000:
  log-float ``[v / 10, 10 v]``; other positive floats ``[v / 4, 4 v]``; all scale ±1–50%.
  0.0: ``[0, 1]``, resample. Negative floats: ``[4 v, v / 4]``, scale.
- bool: flip.

Repeated bindings of the same selector get ``#k`` indices; repeated names get ``_2``, ``_3``.
"""

from __future__ import annotations

import math
from collections import Counter

import libcst as cst

from deepphoenix.grammar import (
    BINDING_FORMS,
    Domain,
    Grammar,
    Kind,
    Operator,
    OperatorKind,
    Selector,
    SiteSpec,
    Value,
    default_operator,
)
from deepphoenix.mutator._bindings import Binding, collect_bindings
from deepphoenix.mutator._literal import LiteralKind
from deepphoenix.mutator._source import parse_module

__all__ = ["infer_grammar", "infer_spec"]


def infer_spec(name: str, selector: Selector, value: Value) -> SiteSpec:
    """A site with a sensible default domain around `value` (see the module docstring)."""
    if isinstance(value, bool):
        return SiteSpec(name, (selector,), Kind.BOOL, Domain(), Operator(OperatorKind.RESAMPLE))
    if isinstance(value, int):
        if value > 0:
            low, high = max(1, value // 4), max(4 * value, value + 8)
        elif value == 0:
            low, high = 0, 8
        else:
            low, high = min(4 * value, value - 8), -1
        return SiteSpec(name, (selector,), Kind.INT, Domain(low, high),
                        default_operator(Kind.INT, low, high))
    assert isinstance(value, float)
    scale = Operator(OperatorKind.SCALE, low=0.01, high=0.5)
    if value == 0.0:
        return SiteSpec(name, (selector,), Kind.FLOAT, Domain(0.0, 1.0),
                        Operator(OperatorKind.RESAMPLE))
    if value < 0:
        return SiteSpec(name, (selector,), Kind.FLOAT, Domain(4 * value, value / 4), scale)
    if value < 0.01 or value > 1000:
        return SiteSpec(name, (selector,), Kind.LOG_FLOAT, Domain(value / 10, value * 10), scale)
    if value < 1:
        return SiteSpec(name, (selector,), Kind.FLOAT, Domain(value / 4, min(1.0, 4 * value)),
                        scale)
    return SiteSpec(name, (selector,), Kind.FLOAT, Domain(value / 4, value * 4), scale)


def infer_grammar(text: str, path: str | None = None, module: cst.Module | None = None,
                  name: str = "inferred") -> Grammar:
    """A grammar whose sites are the numeric and bool literal bindings of `text`."""
    module = module if module is not None else parse_module(text, path)
    everything = collect_bindings(module, text)
    bindings = [
        b for b in everything
        if b.form in BINDING_FORMS
        and b.literal is not None and b.literal[0] in (LiteralKind.NUMBER, LiteralKind.BOOL)
        and _finite(b.literal[1])
    ]
    used: Counter[str] = Counter()
    specs: list[SiteSpec] = []
    for binding in bindings:
        assert binding.literal is not None
        selector = _selector(binding, everything)
        used[binding.target] += 1
        site_name = binding.target if used[binding.target] == 1 else (
            f"{binding.target}_{used[binding.target]}"
        )
        while site_name in {s.name for s in specs}:
            used[binding.target] += 1
            site_name = f"{binding.target}_{used[binding.target]}"
        specs.append(infer_spec(site_name, selector, binding.literal[1]))
    return Grammar(
        name=name, sites=tuple(specs), description=f"inferred from {path or 'a source'}",
        origin="inferred",
    )


def _finite(value: Value) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def _selector(binding: Binding, everything: list[Binding]) -> Selector:
    owner = binding.owner if binding.owner is not None and "*" not in binding.owner else "*"
    plain = Selector(binding.form, binding.target, owner)
    # Index among every binding the selector picks (literal or not), as `find_sites` counts.
    matching = [b for b in everything if b.selected_by(plain)]
    if len(matching) == 1:
        return plain
    index = next(i for i, b in enumerate(matching, start=1) if b.start == binding.start)
    return Selector(binding.form, binding.target, owner, index)
