"""`Bundle`: one grammar over several sources, such as a model file, its training script and
a config override.

Each source is parsed on its own; a site's value comes from the last source that binds it
(later files override earlier ones, as a config override does), and an edit is written
there. Domains, derivations and invariants are checked on the merged values, so a rule may
relate a site of the model file to one of the config.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from deepphoenix.errors import EditError, SiteError
from deepphoenix.grammar import EvaluationError, Grammar, SiteSpec, Value, coerce_value
from deepphoenix.mutator._program import Edit, Program, _as_edits
from deepphoenix.outcome import Check, Outcome

__all__ = ["Bundle", "BundleMutation", "BundleVariant", "parse_bundle"]


@dataclass(frozen=True, slots=True)
class BundleVariant:
    """Every source of a bundle after edits (in bundle order), all site values, and the
    sites that differ from the parent bundle."""

    sources: tuple[tuple[str, str], ...]
    values: tuple[tuple[str, Value], ...]
    changes: tuple[Edit, ...]

    def source(self, path: str) -> str:
        return dict(self.sources)[path]

    def to_dict(self) -> dict[str, Any]:
        return {"sources": dict(self.sources), "values": dict(self.values),
                "changes": [e.to_dict() for e in self.changes]}


@dataclass(frozen=True, slots=True)
class BundleMutation:
    """The typed outcome of applying edits to a bundle (as `Mutation` for one source)."""

    outcome: Outcome
    reason: str = ""
    variant: BundleVariant | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


def _per_file(spec: SiteSpec) -> SiteSpec:
    # Each file only locates literals; the bundle applies the rules.
    return replace(spec, optional=True, default=None, derive=None, read=None, when=None,
                   moves_with=(), mutable=True, relative=None)


class Bundle:
    """Several sources read with one grammar. Immutable; create with `parse_bundle`."""

    __slots__ = ("_values", "grammar", "owners", "present", "programs")

    def __init__(self, files: Sequence[tuple[str, str]], grammar: Grammar) -> None:
        if not files:
            raise SiteError("a bundle needs at least one source")
        local = Grammar(grammar.name, tuple(_per_file(s) for s in grammar.sites
                                            if not s.hidden))
        self.grammar = grammar
        self.programs = tuple(Program(text, local, path=path) for path, text in files)
        owners: dict[str, int] = {}
        values: dict[str, Value] = {s.name: s.default for s in grammar.sites
                                    if s.default is not None}
        for index, program in enumerate(self.programs):
            for site in program.sites:
                owners[site.name] = index  # the last file binding a site wins
                if site.value is not None:
                    values[site.name] = site.value
                else:
                    values.pop(site.name, None)
        self.owners = owners
        self.present = frozenset(owners)
        for spec in grammar.sites:
            required = not (spec.hidden or spec.optional or spec.default is not None)
            if required and spec.name not in owners:
                names = ", ".join(path for path, _ in files)
                raise SiteError(f"site {spec.name!r} of grammar {grammar.name!r} is in none of "
                                f"{names} and has no default")
        values = grammar.read_hidden(values)
        with contextlib.suppress(EvaluationError):  # the checks report it
            values = grammar.derive(values) | values
        if grammar.unresolved:  # relative domains: against the merged values, once
            self.grammar = grammar.resolve(values, " + ".join(path for path, _ in files),
                                           self.present)
        self._values = values

    @property
    def values(self) -> dict[str, Value]:
        return dict(self._values)

    @property
    def proposable(self) -> tuple[SiteSpec, ...]:
        return tuple(s for s in self.grammar.sites if s.proposable and self.editable(s.name))

    def editable(self, name: str) -> bool:
        return name in self.present or (self.grammar.has_site(name) and name in self._values
                                        and self.grammar.site(name).hidden)

    def where(self, name: str) -> str:
        """The path of the source an edit of `name` is written to."""
        path = self.programs[self.owners[name]].path
        assert path is not None
        return path

    def check(self) -> Check:
        return self.grammar.check(self._values, self.present)

    def apply(self, edits: Mapping[str, Value] | Iterable[Edit]) -> BundleMutation:
        """Apply edits, derive, write each into the source that owns the site, validate."""
        values = dict(self._values)
        for edit in _as_edits(edits):
            spec = self.grammar.site(edit.site)
            if not spec.proposable or not self.editable(edit.site):
                raise EditError(f"site {edit.site!r} cannot be edited in this bundle")
            values[edit.site] = coerce_value(spec, edit.value)
        try:
            values = self.grammar.derive(values)
        except EvaluationError as exc:
            return BundleMutation(Outcome.INVARIANT, f"derivation fails: {exc}")
        return self.with_values(values)

    def with_values(self, values: Mapping[str, Value]) -> BundleMutation:
        tracked = [n for n in self.grammar.names if (n in values and self.editable(n))
                   or (n in self.present and n in values)]
        changes = tuple(Edit(n, values[n]) for n in dict.fromkeys(tracked)
                        if values[n] != self._values.get(n)
                        or type(values[n]) is not type(self._values.get(n)))
        if not changes:
            return BundleMutation(Outcome.NO_OP, "the edits change no site")
        sources = []
        for index, program in enumerate(self.programs):
            own = {name: values[name] if self.owners[name] == index and name in values
                   else program.values[name]
                   for name in program.present if name in values or name in program.values}
            written, _ = program.render(own)
            assert program.path is not None
            sources.append((program.path, written.source))
        check = self.grammar.check(values, self.present)
        variant = BundleVariant(
            tuple(sources),
            tuple((s.name, values[s.name]) for s in self.grammar.sites if s.name in values),
            changes,
        )
        return BundleMutation(check.outcome, check.reason, variant)


def parse_bundle(files: Sequence[tuple[str, str]], grammar: Grammar) -> Bundle:
    """Read ``(path, text)`` sources with one grammar, later files overriding earlier ones.

    Raises `ParseError` for invalid Python and `SiteError` when a file binds no site of
    the grammar or a required site is in none of them.
    """
    return Bundle(files, grammar)
