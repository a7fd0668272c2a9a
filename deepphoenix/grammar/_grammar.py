"""`Grammar`: the sites of a program family, how they derive, and the invariants they keep."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from deepphoenix.errors import EditError, GrammarError, did_you_mean
from deepphoenix.grammar._expr import EvaluationError
from deepphoenix.grammar._relative import resolve_site
from deepphoenix.grammar._spec import (
    INT_KINDS,
    Domain,
    Invariant,
    Kind,
    SiteSpec,
    Value,
    format_value,
)
from deepphoenix.outcome import OK, Check, Outcome

__all__ = ["Grammar", "coerce_value"]


@dataclass(frozen=True, slots=True)
class Grammar:
    """A named set of site declarations and invariants. Data, not code.

    Build one with `load_grammar` (built-in name or TOML path), `parse_grammar` (TOML text),
    `infer_grammar` (from a source), or directly. Construction validates cross references
    and orders derived sites so each is computed after what it reads.
    """

    name: str
    sites: tuple[SiteSpec, ...]
    invariants: tuple[Invariant, ...] = ()
    description: str = ""
    origin: str = ""
    _by_name: dict[str, SiteSpec] = field(init=False, repr=False, compare=False)
    _derive_order: tuple[SiteSpec, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, SiteSpec] = {}
        for spec in self.sites:
            if spec.name in by_name:
                raise GrammarError(f"grammar {self.name!r}: site {spec.name!r} is declared twice")
            by_name[spec.name] = spec
        for spec in self.sites:
            _check_references(self.name, spec, by_name)
        for inv in self.invariants:
            for dep in inv.expression.names:
                if dep not in by_name:
                    raise GrammarError(
                        f"grammar {self.name!r}: invariant {inv.text!r} names unknown site "
                        f"{dep!r}.{did_you_mean(dep, by_name)}"
                    )
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_derive_order", _topological(self.name, by_name))

    def __reduce__(self) -> tuple[object, ...]:
        return (Grammar, (self.name, self.sites, self.invariants, self.description, self.origin))

    # -- lookup --------------------------------------------------------------------------
    def site(self, name: str) -> SiteSpec:
        try:
            return self._by_name[name]
        except KeyError:
            raise EditError(
                f"grammar {self.name!r} has no site {name!r}.{did_you_mean(name, self._by_name)}"
            ) from None

    def has_site(self, name: str) -> bool:
        return name in self._by_name

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.sites)

    @property
    def proposable(self) -> tuple[SiteSpec, ...]:
        return tuple(s for s in self.sites if s.proposable)

    @property
    def unresolved(self) -> tuple[SiteSpec, ...]:
        """The sites whose domain is relative to a file's value, not yet resolved."""
        return tuple(s for s in self.sites if s.unresolved)

    def resolve(self, values: Mapping[str, Value], where: str = "the source",
                required: Collection[str] = ()) -> Grammar:
        """This grammar with each relative domain resolved against `values` (the site
        values of the program a search starts from); itself when none is relative.

        A site missing from `values` stays unresolved (a source that does not bind an
        optional site never proposes it), unless it is `required` (in the source, but
        written None: a proposer would draw from its domain). `SiteError` names a site
        that cannot resolve."""
        due = {s.name for s in self.unresolved if s.name in values or s.name in required}
        if not due:
            return self  # so a program read with it keeps this very grammar
        sites = tuple(resolve_site(spec, values.get(spec.name), where, self.name)
                      if spec.name in due else spec for spec in self.sites)
        return Grammar(self.name, sites, self.invariants, self.description, self.origin)

    @property
    def hidden(self) -> tuple[SiteSpec, ...]:
        """The grammar-only sites, which no source writes."""
        return tuple(s for s in self.sites if s.hidden)

    def active(self, spec: SiteSpec, values: Mapping[str, Value]) -> bool:
        """Whether a site's `when` condition holds on `values` (always, without one)."""
        if spec.when is None:
            return True
        try:
            return bool(spec.when.evaluate(values))
        except (EvaluationError, KeyError):
            return False

    def read_hidden(self, values: Mapping[str, Value]) -> dict[str, Value]:
        """`values` with every hidden site that has `read` computed from the others (the
        value a source implies, e.g. ``head_size = n_embd // n_head``). Where the reading
        fails (an input missing, a division by zero) the site takes its default, or is
        left out, like an optional site the source does not bind."""
        out = dict(values)
        for spec in self.sites:
            if spec.read is None:
                continue
            try:
                if not spec.read.names <= out.keys():
                    raise EvaluationError(f"{spec.read.text}: an input is not bound")
                out[spec.name] = _as_kind(spec, spec.read.evaluate(out))
            except EvaluationError:
                if spec.default is not None:
                    out[spec.name] = spec.default
                else:
                    out.pop(spec.name, None)
        return out

    # -- values --------------------------------------------------------------------------
    def derive(self, values: Mapping[str, Value]) -> dict[str, Value]:
        """Return `values` with every derived site recomputed from the others (one whose
        inputs include an optional site the source does not bind keeps its value)."""
        out = dict(values)
        for spec in self._derive_order:
            assert spec.derive is not None
            if spec.derive.names <= out.keys():
                out[spec.name] = _as_kind(spec, spec.derive.evaluate(out))
        return out

    def check(self, values: Mapping[str, Value], present: frozenset[str] | None = None) -> Check:
        """Validate complete values: domains first, then derivations, then invariants.

        `present` names the sites bound in the source; a derivation is only checked for a
        derived site that is present (an absent one keeps its default and is not written).
        Optional sites the source does not bind are missing from `values`; rules that name
        one are not checked.
        """
        for spec in self.sites:
            if spec.name not in values:
                continue
            value = values[spec.name]
            declared = spec.proposable or spec.domain != Domain()
            if not declared or not self.active(spec, values):
                continue
            if not spec.domain.contains(spec.kind, value):
                return Check(
                    Outcome.OUT_OF_DOMAIN,
                    f"{spec.name}={format_value(value)} is outside "
                    f"{spec.domain.describe(spec.kind)}",
                )
        for spec in self._derive_order:
            if present is not None and spec.name not in present:
                continue
            assert spec.derive is not None
            if not (spec.derive.names | {spec.name}) <= values.keys():
                continue
            try:
                expected = _as_kind(spec, spec.derive.evaluate(values))
            except EvaluationError as exc:
                return Check(Outcome.INVARIANT, f"{spec.name} = {spec.derive.text} fails: {exc}")
            if not _same(values[spec.name], expected):
                return Check(
                    Outcome.INVARIANT,
                    f"{spec.name} == {spec.derive.text} broken: "
                    + _show(values, (spec.name, *sorted(spec.derive.names))),
                )
        for inv in self.invariants:
            if not inv.expression.names <= values.keys():
                continue
            try:
                holds = bool(inv.expression.evaluate(values))
                failure = ""
            except EvaluationError as exc:
                holds, failure = False, f" ({exc})"
            if not holds:
                return Check(
                    Outcome.INVARIANT,
                    f"{inv.text} broken: {_show(values, sorted(inv.expression.names))}{failure}",
                )
        return OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "origin": self.origin,
            "sites": [s.to_dict() for s in self.sites],
            "invariants": [i.text for i in self.invariants],
        }


def coerce_value(spec: SiteSpec, value: object) -> Value:
    """Return `value` as the site's kind, or raise `EditError` naming site, value and type."""
    kind = spec.kind
    if kind is Kind.BOOL:
        if isinstance(value, bool):
            return value
    elif kind in INT_KINDS:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer() and math.isfinite(value):
            return int(value)
    elif kind in (Kind.FLOAT, Kind.LOG_FLOAT):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif isinstance(value, str):
        return value
    expected = {"int": "int", "log-int": "int", "float": "float", "log-float": "float",
                "bool": "bool"}.get(
        kind.value, "str"
    )
    raise EditError(
        f"Expected {expected} for site {spec.name!r} but got {value!r} "
        f"(type={type(value).__name__})"
    )


def _check_references(grammar: str, spec: SiteSpec, by_name: dict[str, SiteSpec]) -> None:
    """Every name a site's expressions or `moves_with` use is a site, and hidden sites are
    well formed (no selectors, a `read` over written sites or a default)."""
    where = f"grammar {grammar!r}: site {spec.name!r}"
    uses = (("derives from", spec.derive), ("reads", spec.read), ("is conditional on", spec.when))
    for verb, expression in uses:
        for dep in expression.names if expression is not None else ():
            if dep not in by_name:
                raise GrammarError(
                    f"{where} {verb} unknown site {dep!r}.{did_you_mean(dep, by_name)}"
                )
    if spec.hidden and spec.selectors:
        raise GrammarError(f"{where} is hidden (not in the source) but has selectors")
    if spec.hidden and spec.read is None and spec.default is None and spec.derive is None:
        raise GrammarError(f"{where} is hidden: give it 'read' (an expression over written "
                           "sites) or a 'default'")
    if spec.read is not None:
        if not spec.hidden:
            raise GrammarError(f"{where}: 'read' applies to hidden sites only")
        for dep in spec.read.names:
            if by_name[dep].hidden:
                raise GrammarError(f"{where} reads hidden site {dep!r}; read from written "
                                   "sites")
    for partner in spec.moves_with:
        if partner not in by_name:
            raise GrammarError(
                f"{where} moves with unknown site {partner!r}.{did_you_mean(partner, by_name)}"
            )
        if partner == spec.name or not by_name[partner].proposable:
            raise GrammarError(f"{where} moves with {partner!r}, which is not another "
                               "proposable site")


def _same(written: Value, expected: Value) -> bool:
    """Equal values; floats equal to twelve significant digits (6e-05 is 6e-4 / 10)."""
    if isinstance(written, float) and isinstance(expected, float):
        return math.isclose(written, expected, rel_tol=1e-11, abs_tol=0.0)
    return written == expected


def _as_kind(spec: SiteSpec, value: Value) -> Value:
    if spec.kind in INT_KINDS and isinstance(value, float) and value.is_integer():
        return int(value)
    if spec.kind in (Kind.FLOAT, Kind.LOG_FLOAT) and isinstance(value, int) and not isinstance(
        value, bool
    ):
        return float(value)
    if spec.kind in (Kind.FLOAT, Kind.LOG_FLOAT) and isinstance(value, float) and math.isfinite(
        value
    ):
        return float(f"{value:.12g}")  # 6e-05, not 5.999999999999999e-05
    return value


def _show(values: Mapping[str, Value], names: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"{n}={format_value(values[n])}" for n in names)


def _topological(grammar: str, by_name: dict[str, SiteSpec]) -> tuple[SiteSpec, ...]:
    order: list[SiteSpec] = []
    state: dict[str, int] = {}

    def visit(spec: SiteSpec, chain: tuple[str, ...]) -> None:
        if state.get(spec.name) == 2:
            return
        if state.get(spec.name) == 1:
            raise GrammarError(
                f"grammar {grammar!r}: derived sites form a cycle: {' -> '.join(chain)}"
            )
        state[spec.name] = 1
        if spec.derive is not None:
            for dep in sorted(spec.derive.names):
                visit(by_name[dep], (*chain, dep))
            order.append(spec)
        state[spec.name] = 2

    for spec in by_name.values():
        visit(spec, (spec.name,))
    return tuple(order)
