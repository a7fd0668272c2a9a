"""`Program`: a source parsed once against a grammar, ready to be mutated many times.

Parsing finds the grammar's sites and splits the text into fixed pieces around the site
literals. Applying edits splices new literals into those pieces, so every byte outside the
edited literals is kept; validation runs on the values (domains, derivations, invariants),
and the canonical hash is assembled from a pre-split `ast.dump` of the template, so no
variant is re-parsed.

The canonical hash is the SHA-256 of ``ast.dump(ast.parse(source))``: formatting and
comments do not change it. It is stable for a given Python minor version.
"""

from __future__ import annotations

import ast
import difflib
import functools
import hashlib
import itertools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libcst as cst

from deepphoenix.errors import EditError, ParseError, SiteError
from deepphoenix.grammar import (
    EvaluationError,
    Grammar,
    SiteSpec,
    Value,
    coerce_value,
    format_value,
)
from deepphoenix.mutator._bindings import Binding, collect_bindings, select_bindings
from deepphoenix.mutator._literal import LiteralKind, normalise, render_value, value_fits
from deepphoenix.mutator._source import parse_module, read_source
from deepphoenix.mutator._structure import find_structural, render_alternative
from deepphoenix.outcome import Check, Outcome

__all__ = [
    "HASH_LENGTH",
    "Edit",
    "Mutation",
    "Program",
    "Site",
    "Variant",
    "canonical_hash",
    "find_sites",
    "parse_program",
]

HASH_LENGTH = 16  # hex digits of SHA-256 kept as a variant's name
_MARK = re.compile(r"Name\(id='__deepphoenix_site_(\d+)__', ctx=Load\(\)\)")
_FRAGMENT_CACHE_LIMIT = 65_536


def canonical_hash(source: str) -> str:
    """The formatting-insensitive name of a source (raises `ParseError` if not Python)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ParseError(exc.msg, path=None, line=exc.lineno or 1, column=exc.offset or 1) from None
    return _digest(ast.dump(tree))


def _digest(dump: str) -> str:
    return hashlib.sha256(dump.encode("utf-8")).hexdigest()[:HASH_LENGTH]


@functools.lru_cache(maxsize=_FRAGMENT_CACHE_LIMIT)
def _fragment(literal: str) -> str:
    """`ast.dump` of a literal expression, as it appears inside a module's dump (memoised:
    a search renders the same few literals again and again)."""
    return ast.dump(ast.parse(literal, mode="eval").body)


@dataclass(frozen=True, slots=True)
class Site:
    """A grammar site found in a source: its value (None when a nullable site is written
    ``None``: unset) and where its literal is."""

    name: str
    value: Value | None
    literal: str
    start: int
    end: int
    line: int
    column: int
    selector: str
    label: str
    indent: str | None = None  # a statement or definition site: its lines' indentation

    @property
    def lines(self) -> bool:
        """Whether the site spans whole lines (a structural statement or definition)."""
        return self.indent is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "value": self.value, "literal": self.literal,
            "line": self.line, "column": self.column, "selector": self.selector,
            "label": self.label,
        }

    def mark(self, text: str) -> str:
        """`text` (a placeholder name) written where the site is: bare in an expression,
        as a line of its own at a statement site."""
        return f"{self.indent}{text}\n" if self.indent is not None else text


@dataclass(frozen=True, slots=True)
class Edit:
    """Set site `site` to `value`."""

    site: str
    value: Value

    def __str__(self) -> str:
        return f"{self.site}={format_value(self.value)}"

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site, "value": self.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Edit:
        return cls(site=str(data["site"]), value=data["value"])


@dataclass(frozen=True, slots=True)
class Variant:
    """A program produced by edits: its text, canonical hash, all site values, and the
    sites that differ from its parent (derived ones included). A variant of a bundle of
    several files (`Bundle`) also lists each file's text, in bundle order, in `files`;
    its `source` is then the bundle's text (`bundle_text`)."""

    source: str
    hash: str
    values: tuple[tuple[str, Value], ...]
    changes: tuple[Edit, ...]
    parent: str
    files: tuple[tuple[str, str], ...] = ()  # a bundle's (path, text) pairs

    def value(self, site: str) -> Value:
        return dict(self.values)[site]

    def file(self, path: str) -> str:
        """The text of one file of a bundle's variant."""
        return dict(self.files)[path]

    def to_dict(self) -> dict[str, Any]:
        data = {
            "hash": self.hash, "parent": self.parent, "source": self.source,
            "values": dict(self.values), "changes": [e.to_dict() for e in self.changes],
        }
        if self.files:
            data["files"] = dict(self.files)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Variant:
        return cls(
            source=data["source"], hash=data["hash"], values=tuple(data["values"].items()),
            changes=tuple(Edit.from_dict(e) for e in data["changes"]), parent=data["parent"],
            files=tuple((str(k), str(v)) for k, v in (data.get("files") or {}).items()),
        )


@dataclass(frozen=True, slots=True)
class Mutation:
    """The typed outcome of applying edits. `variant` is set whenever the edits produced a
    text (accepted or not); `reason` says why a rejected one was rejected."""

    outcome: Outcome
    reason: str = ""
    variant: Variant | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


def _as_edits(edits: Mapping[str, Value] | Iterable[Edit]) -> list[Edit]:
    if isinstance(edits, Mapping):
        return [Edit(k, v) for k, v in edits.items()]
    return list(edits)


class Program:
    """A source parsed against a grammar. Immutable; create with `parse_program`."""

    __slots__ = (
        "_dump_fixed", "_dump_order", "_fixed", "_specs", "_structural", "_tracked", "_values",
        "grammar", "hash",
        "module", "path", "present", "sites", "text",
    )

    def __init__(self, text: str, grammar: Grammar, *, path: str | None = None,
                 module: cst.Module | None = None) -> None:
        self.text = text
        self.grammar = grammar
        self.path = path
        self.module = module if module is not None else parse_module(text, path)
        self.sites: tuple[Site, ...] = tuple(find_sites(self.module, text, grammar, path))
        self.present = frozenset(s.name for s in self.sites)
        values: dict[str, Value] = {}
        for spec in grammar.sites:
            if spec.default is not None:
                values[spec.name] = spec.default
        values.update((s.name, s.value) for s in self.sites if s.value is not None)
        try:
            values = grammar.derive(grammar.read_hidden(values)) | values
        except EvaluationError:
            values = grammar.read_hidden(values)  # a derivation fails: checks will say so
        if grammar.unresolved:
            # Domains relative to the file resolve against this source, once: a program
            # read with the resolved grammar (every variant of it) keeps them.
            self.grammar = grammar = grammar.resolve(values, path or "the source",
                                                     self.present)
        self._values = values
        self._specs = tuple(grammar.site(s.name) for s in self.sites)
        # What a variant's changes list: the written sites in document order, then hidden.
        self._tracked = (*(s.name for s in self.sites),
                         *(h.name for h in grammar.hidden if h.name in values))
        pieces, cursor = [], 0
        for site in self.sites:
            pieces.append(text[cursor:site.start])
            cursor = site.end
        pieces.append(text[cursor:])
        self._fixed = tuple(pieces)
        self._structural = any(spec.structural for spec in self._specs)
        self._dump_fixed, self._dump_order = self._split_dump()
        # Structural code changes the tree around it: such programs hash the whole text.
        self.hash = canonical_hash(text) if self._structural else _digest(
            self._assemble_dump([s.literal for s in self.sites]))

    # -- construction helpers ------------------------------------------------------------
    def template(self, mark: Any = None) -> str:
        """The source with each site replaced by a placeholder name (``mark(i, site)``,
        default ``__deepphoenix_site_I__``): the same for every variant of the program."""
        marks = [site.mark(mark(i, site) if mark else f"__deepphoenix_site_{i}__")
                 for i, site in enumerate(self.sites)]
        return self._fixed[0] + "".join(
            m + fixed for m, fixed in zip(marks, self._fixed[1:], strict=True)
        )

    def _split_dump(self) -> tuple[tuple[str, ...], tuple[int, ...]]:
        template = self.template()
        try:
            dump = ast.dump(ast.parse(template))
        except SyntaxError as exc:
            raise ParseError(
                f"{exc.msg} (libcst accepts it, this Python does not)",
                path=self.path, line=exc.lineno or 1, column=exc.offset or 1,
            ) from None
        fixed: list[str] = []
        order: list[int] = []
        cursor = 0
        for hit in _MARK.finditer(dump):
            fixed.append(dump[cursor:hit.start()])
            order.append(int(hit.group(1)))
            cursor = hit.end()
        fixed.append(dump[cursor:])
        return tuple(fixed), tuple(order)

    def _assemble_dump(self, literals: list[str]) -> str:
        parts = [self._dump_fixed[0]]
        for index, fixed in zip(self._dump_order, self._dump_fixed[1:], strict=True):
            parts.append(_fragment(literals[index]))
            parts.append(fixed)
        return "".join(parts)

    # -- reading -------------------------------------------------------------------------
    @property
    def values(self) -> dict[str, Value]:
        """Every grammar site's value: found in the source, else the grammar default."""
        return dict(self._values)

    def site(self, name: str) -> Site:
        for site in self.sites:
            if site.name == name:
                return site
        self.grammar.site(name)  # raises for unknown names, with suggestions
        raise EditError(f"site {name!r} is not in {self.path or 'the source'}")

    @property
    def proposable(self) -> tuple[SiteSpec, ...]:
        """Specs of the sites that proposers may change: those in this source, then the
        grammar's hidden ones."""
        hidden = tuple(spec for spec in self.grammar.hidden
                       if spec.proposable and spec.name in self._values)
        return tuple(spec for spec in self._specs if spec.proposable) + hidden

    def editable(self, name: str) -> bool:
        """Whether edits may name the site: in the source or hidden."""
        return name in self.present or (self.grammar.has_site(name) and name in self._values
                                         and self.grammar.site(name).hidden)

    # -- writing -------------------------------------------------------------------------
    def apply(self, edits: Mapping[str, Value] | Iterable[Edit]) -> Mutation:
        """Apply edits to proposable sites, recompute derived sites, validate.

        Returns a `Mutation` (`OK`, `NO_OP`, `OUT_OF_DOMAIN`, `INVARIANT`); raises
        `EditError` for edits that name unknown, derived, fixed or absent sites or carry
        a value of the wrong type.
        """
        values = dict(self._values)
        for edit in _as_edits(edits):
            spec = self.grammar.site(edit.site)
            if not spec.proposable:
                what = "derived" if spec.derived else "fixed (mutable = false)"
                raise EditError(f"site {edit.site!r} is {what}; it cannot be edited")
            if not self.editable(edit.site):
                raise EditError(f"site {edit.site!r} is not in {self.path or 'the source'}")
            values[edit.site] = coerce_value(spec, edit.value)
        try:
            values = self.grammar.derive(values)
        except EvaluationError as exc:
            return Mutation(Outcome.INVARIANT, f"derivation fails: {exc}")
        for edit in _as_edits(edits):
            spec = self.grammar.site(edit.site)
            if not self.grammar.active(spec, values) and values[edit.site] != self._values[
                edit.site
            ]:
                return Mutation(Outcome.INVARIANT, f"site {edit.site!r} is inactive "
                                f"(when {spec.when.text if spec.when else ''} does not hold)")
        return self.with_values(values)

    def with_values(self, values: Mapping[str, Value]) -> Mutation:
        """Write the given values of all sites as they are (no derivation) and validate.
        Grounding uses it so a model's wrong derived value is caught, not silently fixed."""
        for name, value in values.items():
            # inf and nan have no literal: written as a call, the site would be lost.
            if isinstance(value, float) and not math.isfinite(value):
                return Mutation(Outcome.OUT_OF_DOMAIN, f"{name}={value} is not a finite number")
        variant, check = self.render(values)
        if not variant.changes:
            return Mutation(Outcome.NO_OP, "the edits change no site")
        return Mutation(check.outcome, check.reason, variant)

    def render(self, values: Mapping[str, Value]) -> tuple[Variant, Check]:
        """The variant holding `values` (the program itself when nothing changes) and the
        grammar's verdict on them."""
        changes = tuple(
            Edit(name, values[name]) for name in self._tracked
            if name in values and (
                values[name] != self._values.get(name)
                or type(values[name]) is not type(self._values.get(name))
            )
        )
        literals = [
            self._render_site(site, spec, values[site.name]) if site.name in values
            and values[site.name] != site.value else site.literal
            for site, spec in zip(self.sites, self._specs, strict=True)
        ]
        parts = [self._fixed[0]]
        for literal, fixed in zip(literals, self._fixed[1:], strict=True):
            parts.append(literal)
            parts.append(fixed)
        source = "".join(parts)
        verdict: Check | None = None
        if self._structural:
            try:
                digest = canonical_hash(source)
            except ParseError as exc:  # an alternative that does not fit its place
                digest = _digest(source)
                verdict = Check(Outcome.UNPARSEABLE, f"the spliced code is not Python: {exc}")
        else:
            digest = _digest(self._assemble_dump(literals))
        variant = Variant(
            source=source,
            hash=digest,
            values=tuple((spec.name, values[spec.name]) for spec in self.grammar.sites
                         if spec.name in values),
            changes=changes,
            parent=self.hash,
        )
        return variant, verdict or self.grammar.check(values, self.present)

    @staticmethod
    def _render_site(site: Site, spec: SiteSpec, value: Value) -> str:
        if spec.structure is not None:
            if str(value) not in spec.structure.names:
                return site.literal  # no such code: the domain check rejects the value
            return render_alternative(spec, str(value), site.indent)
        return render_value(spec, value, site.literal)


def parse_program(text: str, grammar: Grammar, path: str | None = None) -> Program:
    """Parse `text` and find the grammar's sites in it.

    A grammar with domains relative to the file's values is resolved against `text`: the
    program's `grammar` is the resolved one; read later programs of a search (variants of
    this one) with it, so their domains stay those of the search's seed.

    Raises `ParseError` for invalid Python and `SiteError` when the grammar does not fit
    (or a relative domain cannot resolve).
    """
    return Program(text, grammar, path=path)


def read_program(path: str | Path, grammar: Grammar) -> Program:
    """Read and parse a file (`SourceError` for unreadable files)."""
    return Program(read_source(path), grammar, path=str(path))


def find_sites(module: cst.Module, text: str, grammar: Grammar,
               path: str | None = None) -> list[Site]:
    """The grammar's sites in a parsed module, in document order.

    Raises `SiteError` when none is found, a required one is missing, one matches several
    places or a non-literal of the wrong kind, or two sites claim the same literal.
    """
    where = path or "the source"
    bindings = collect_bindings(module, text)
    claimed: dict[int, str] = {}
    sites: list[Site] = []
    for spec in grammar.sites:
        if spec.structural:
            continue
        matches: dict[int, tuple[Binding, str]] = {}
        for selector in spec.selectors:
            for binding in select_bindings(bindings, selector):
                if binding.literal is not None and (
                    spec.nullable or binding.literal[0] != LiteralKind.NONE
                ):
                    matches.setdefault(binding.start, (binding, str(selector)))
        if not matches:
            if spec.default is None and not spec.optional and not spec.hidden:
                raise SiteError(_nothing_matches(spec, grammar, where, bindings))
            continue
        if len(matches) > 1:
            lines = ", ".join(f"line {b.line} ({b.label})" for b, _ in matches.values())
            raise SiteError(
                f"site {spec.name!r} matches {len(matches)} places in {where}: {lines}; narrow "
                "its selector (owner or #index)"
            )
        binding, selector_text = next(iter(matches.values()))
        assert binding.literal is not None
        tag, value = binding.literal
        if not value_fits(spec, tag, value):
            raise SiteError(
                f"site {spec.name!r} at {where}:{binding.line} ({binding.label}) is "
                f"{text[binding.start:binding.end]!r}, not a literal of kind {spec.kind}"
            )
        if binding.start in claimed:
            raise SiteError(
                f"sites {claimed[binding.start]!r} and {spec.name!r} both select "
                f"{where}:{binding.line} ({binding.label})"
            )
        claimed[binding.start] = spec.name
        literal = text[binding.start:binding.end]
        sites.append(Site(
            name=spec.name, literal=literal,
            value=None if tag == LiteralKind.NONE else normalise(spec, value, literal),
            start=binding.start, end=binding.end, line=binding.line, column=binding.column,
            selector=selector_text, label=binding.label,
        ))
    for found in find_structural(module, text, grammar, path, bindings):
        sites.append(Site(
            name=found.name, value=found.value, literal=text[found.start:found.end],
            start=found.start, end=found.end, line=found.line, column=found.column,
            selector=found.how, label=found.label, indent=found.indent,
        ))
    if not sites:
        if grammar.origin == "inferred":
            raise SiteError(f"--grammar infer finds no literal to search in {where} (no "
                            "numeric, bool or string constant at a site it reads); write "
                            "a grammar TOML for this file")
        raise SiteError(
            f"grammar {grammar.name!r} finds no sites in {where}; try --grammar infer or a "
            "grammar for this kind of file"
        )
    sites.sort(key=lambda s: (s.start, s.end))
    for before, after in itertools.pairwise(sites):
        if after.start < before.end or (after.start == before.end == after.end
                                        and before.lines and after.lines):
            raise SiteError(
                f"sites {before.name!r} (line {before.line}) and {after.name!r} (line "
                f"{after.line}) overlap in {where}; a literal or structural site cannot lie "
                "inside a structural one: narrow one of them")
    return sites


def _nothing_matches(spec: SiteSpec, grammar: Grammar, where: str,
                     bindings: list[Binding]) -> str:
    """Why a required site is missing: what its selectors look for and what is near."""
    wanted = " | ".join(str(s) for s in spec.selectors)
    targets = {s.target for s in spec.selectors}
    near = [b for b in bindings if b.target in targets]
    if not near:
        close = set(difflib.get_close_matches(
            next(iter(targets), spec.name), {b.target for b in bindings}, n=3, cutoff=0.7))
        near = [b for b in bindings if b.target in close]
    shown = "; ".join(
        f"{b.label} at line {b.line} ({_describe_binding(b)})" for b in near[:3]
    )
    hint = f"; near: {shown}" if shown else "; nothing of that name is bound there"
    return (f"site {spec.name!r} of grammar {grammar.name!r}: {wanted} matches no literal in "
            f"{where}{hint} (fix the selector, or give the site a default or optional = true)")


def _describe_binding(binding: Binding) -> str:
    what = {"attribute": "an attribute", "keyword": "a keyword", "field": "a class field",
            "parameter": "a parameter default", "name": "a name"}.get(binding.form.value,
                                                                    binding.form.value)
    if binding.literal is None:
        return f"{what}, not a literal"
    tag, value = binding.literal
    if tag == LiteralKind.NONE:
        return f"{what} holding None; declare the site nullable = true"
    return f"{what} holding the name {value}" if tag == LiteralKind.NAME else what
