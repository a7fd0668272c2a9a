"""`Bundle`: one grammar over several sources, such as a model file, its training script and
a config override: the candidate of a search over a project.

Each source is parsed on its own; a site's value comes from the last source that binds it
(later files override earlier ones, as a config override does), and an edit is written
there. Domains, derivations and invariants are checked on the merged values, so a rule may
relate a site of the model file to one of the config. A structural site (code) belongs to
one file: code bound in two files is a `SiteError`, since no later file overrides code.

A bundle is one variant with one hash. Its text (`bundle_text`, what a run database
stores) is each file after a header line naming its path and length; `split_bundle` reads
it back and `parse_candidate` parses either kind of text. A bundle of one file is that
file: its text is the file's text and its hash the file's canonical hash, so a single-file
program is the one-file case of the same code, and run databases written before bundles
read as they are. Several files hash as the SHA-256 of their paths and canonical hashes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from deepphoenix.errors import EditError, SiteError, SourceError
from deepphoenix.grammar import EvaluationError, Grammar, SiteSpec, Value, coerce_value
from deepphoenix.mutator._diff import unified_diff
from deepphoenix.mutator._program import (
    HASH_LENGTH,
    Edit,
    Mutation,
    Program,
    Site,
    Variant,
    _as_edits,
)
from deepphoenix.outcome import Check, Outcome

__all__ = ["BUNDLE_HEADER", "Bundle", "BundleMutation", "BundleVariant", "bundle_diff",
           "bundle_hash", "bundle_text", "is_bundle_text", "parse_bundle", "parse_candidate",
           "split_bundle"]

BUNDLE_HEADER = "# deepphoenix bundle: "  # + "N files"
_FILE = re.compile(r'# --- file ("(?:[^"\\]|\\.)*") \((\d+) characters\) ---\n')

# Kept for code written against the first bundle API: a bundle's variant is a `Variant`
# (with `files`), its outcome a `Mutation`.
BundleVariant = Variant
BundleMutation = Mutation


def bundle_text(files: Sequence[tuple[str, str]]) -> str:
    """The one text of a bundle: a file alone is its own text; several files each follow a
    header line with the path (JSON-quoted) and the length, so any text reads back exactly."""
    if len(files) == 1:
        return files[0][1]
    parts = [f"{BUNDLE_HEADER}{len(files)} files\n"]
    for path, text in files:
        parts.append(f"# --- file {json.dumps(path)} ({len(text)} characters) ---\n")
        parts.append(text)
        parts.append("\n")
    return "".join(parts)


def is_bundle_text(text: str) -> bool:
    return text.startswith(BUNDLE_HEADER)


def split_bundle(text: str) -> tuple[tuple[str, str], ...] | None:
    """The (path, text) files of a bundle's text; None for the text of one file.
    `SourceError` for a bundle text that was cut or changed."""
    if not is_bundle_text(text):
        return None
    head, _, rest = text.partition("\n")
    count = head[len(BUNDLE_HEADER):].removesuffix(" files")
    if not count.isdigit():
        raise SourceError(f"a bundle text with a malformed first line: {head[:80]!r}")
    files: list[tuple[str, str]] = []
    cursor = 0
    for _ in range(int(count)):
        found = _FILE.match(rest, cursor)
        if found is None:
            raise SourceError(f"a bundle text cut or changed at file {len(files) + 1} of "
                              f"{count}")
        path, length = json.loads(found.group(1)), int(found.group(2))
        start = found.end()
        body = rest[start:start + length]
        if len(body) != length or rest[start + length:start + length + 1] != "\n":
            raise SourceError(f"a bundle text cut or changed in file {path!r}")
        files.append((str(path), body))
        cursor = start + length + 1
    if cursor != len(rest):
        raise SourceError("a bundle text with more after its last file")
    return tuple(files)


def bundle_hash(paths: Sequence[str], hashes: Sequence[str]) -> str:
    """A bundle's name from its files' paths and canonical hashes (one file: its hash)."""
    if len(hashes) == 1:
        return hashes[0]
    text = "deepphoenix bundle\n" + "".join(
        f"{json.dumps(p)} {h}\n" for p, h in zip(paths, hashes, strict=True))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_LENGTH]


def bundle_diff(a: str, b: str, a_name: str = "a", b_name: str = "b") -> str:
    """A unified diff of two texts, file by file when they are bundles (each file's header
    names it: ``a/NAME/PATH``), else of the two texts as they are."""
    a_files, b_files = split_bundle(a), split_bundle(b)
    if a_files is None or b_files is None:
        return unified_diff(a, b, a_name, b_name)
    before, after = dict(a_files), dict(b_files)
    return "".join(unified_diff(before.get(path, ""), after.get(path, ""),
                                f"{a_name}/{path}", f"{b_name}/{path}")
                   for path in dict.fromkeys([*before, *after]))


def _per_file(spec: SiteSpec) -> SiteSpec:
    # Each file only locates literals; the bundle applies the rules.
    return replace(spec, optional=True, default=None, derive=None, read=None, when=None,
                   moves_with=(), mutable=True, relative=None)


def _read(text: str, local: Grammar, path: str) -> Program:
    try:
        return Program(text, local, path=path)
    except SiteError as exc:
        if not str(exc).startswith(f"grammar {local.name!r} finds no sites"):
            raise
        raise SiteError(f"grammar {local.name!r} binds no site in {path}: each file of a "
                        "bundle (--with) holds at least one of its sites") from None


class Bundle:
    """Several sources read with one grammar. Immutable; create with `parse_bundle`.

    It answers what proposers ask a `Program` (values, proposable sites, `apply`,
    `with_values`, `render`, `site`, `hash`, `text`), so those that read site values
    (random draws, TPE, GP-BO) propose for a bundle as for one file.
    """

    __slots__ = ("_values", "grammar", "hash", "owners", "present", "programs", "text")

    def __init__(self, files: Sequence[tuple[str, str]], grammar: Grammar) -> None:
        if not files:
            raise SiteError("a bundle needs at least one source")
        paths = [path for path, _ in files]
        twice = sorted({p for p in paths if paths.count(p) > 1})
        if twice:
            raise SiteError(f"{twice[0]} is named twice; name each file of a bundle once")
        local = Grammar(grammar.name, tuple(_per_file(s) for s in grammar.sites
                                            if not s.hidden))
        self.grammar = grammar
        self.programs = tuple(_read(text, local, path) for path, text in files)
        owners: dict[str, int] = {}
        values: dict[str, Value] = {s.name: s.default for s in grammar.sites
                                    if s.default is not None}
        for index, program in enumerate(self.programs):
            for site in program.sites:
                earlier = owners.get(site.name)
                if earlier is not None and grammar.site(site.name).structural:
                    raise SiteError(
                        f"site {site.name!r} is code in both {paths[earlier]} (line "
                        f"{self.programs[earlier].site(site.name).line}) and {paths[index]} "
                        f"(line {site.line}); a structural site belongs to one file (a later "
                        "file overrides a value, never code): keep it in one of them")
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
                names = ", ".join(paths)
                raise SiteError(f"site {spec.name!r} of grammar {grammar.name!r} is in none of "
                                f"{names} and has no default")
        values = grammar.read_hidden(values)
        with contextlib.suppress(EvaluationError):  # the checks report it
            values = grammar.derive(values) | values
        if grammar.unresolved:  # relative domains: against the merged values, once
            self.grammar = grammar.resolve(values, " + ".join(path for path, _ in files),
                                           self.present)
        self._values = values
        self.text = bundle_text(files)
        self.hash = bundle_hash(paths, [p.hash for p in self.programs])

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(str(p.path) for p in self.programs)

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

    def site(self, name: str) -> Site:
        """The site `name` where edits write it (in the last file that binds it)."""
        if name not in self.owners:
            self.grammar.site(name)  # raises for unknown names, with suggestions
            raise EditError(f"site {name!r} is in none of {', '.join(self.paths)}")
        return self.programs[self.owners[name]].site(name)

    def check(self) -> Check:
        return self.grammar.check(self._values, self.present)

    def apply(self, edits: Mapping[str, Value] | Iterable[Edit]) -> Mutation:
        """Apply edits, derive, write each into the source that owns the site, validate
        (the outcomes of `Program.apply`)."""
        values = dict(self._values)
        for edit in _as_edits(edits):
            spec = self.grammar.site(edit.site)
            if not spec.proposable or not self.editable(edit.site):
                raise EditError(f"site {edit.site!r} cannot be edited in this bundle")
            values[edit.site] = coerce_value(spec, edit.value)
        try:
            values = self.grammar.derive(values)
        except EvaluationError as exc:
            return Mutation(Outcome.INVARIANT, f"derivation fails: {exc}")
        for edit in _as_edits(edits):
            spec = self.grammar.site(edit.site)
            if not self.grammar.active(spec, values) and values[edit.site] != self._values.get(
                    edit.site):
                return Mutation(Outcome.INVARIANT, f"site {edit.site!r} is inactive "
                                f"(when {spec.when.text if spec.when else ''} does not hold)")
        return self.with_values(values)

    def with_values(self, values: Mapping[str, Value]) -> Mutation:
        """Write the given values as they are (no derivation) and validate."""
        for name, value in values.items():
            if isinstance(value, float) and not math.isfinite(value):
                return Mutation(Outcome.OUT_OF_DOMAIN, f"{name}={value} is not a finite number")
        variant, check = self.render(values)
        if not variant.changes:
            return Mutation(Outcome.NO_OP, "the edits change no site")
        return Mutation(check.outcome, check.reason, variant)

    def render(self, values: Mapping[str, Value]) -> tuple[Variant, Check]:
        """The variant holding `values` (the bundle itself when nothing changes) and the
        grammar's verdict on them: each file rendered with the values it owns."""
        tracked = [n for n in self.grammar.names if (n in values and self.editable(n))
                   or (n in self.present and n in values)]
        changes = tuple(Edit(n, values[n]) for n in dict.fromkeys(tracked)
                        if values[n] != self._values.get(n)
                        or type(values[n]) is not type(self._values.get(n)))
        files: list[tuple[str, str]] = []
        hashes: list[str] = []
        verdict: Check | None = None
        for index, program in enumerate(self.programs):
            own = {name: values[name] if self.owners[name] == index and name in values
                   else program.values[name]
                   for name in program.present if name in values or name in program.values}
            written, check = program.render(own)
            if check.outcome is Outcome.UNPARSEABLE and verdict is None:
                verdict = check
            assert program.path is not None
            files.append((program.path, written.source))
            hashes.append(written.hash)
        variant = Variant(
            source=bundle_text(files),
            hash=bundle_hash([p for p, _ in files], hashes),
            values=tuple((s.name, values[s.name]) for s in self.grammar.sites
                         if s.name in values),
            changes=changes,
            parent=self.hash,
            files=tuple(files),
        )
        return variant, verdict or self.grammar.check(values, self.present)

    def to_dict(self) -> dict[str, Any]:
        return {"files": list(self.paths), "hash": self.hash, "values": self.values,
                "owners": {name: self.where(name) for name in sorted(self.owners)}}


def parse_bundle(files: Sequence[tuple[str, str]], grammar: Grammar) -> Bundle:
    """Read ``(path, text)`` sources with one grammar, later files overriding earlier ones.

    Raises `ParseError` for invalid Python and `SiteError` when a file binds no site of
    the grammar, a required site is in none of them, a path is named twice, or a
    structural site is code in two files.
    """
    return Bundle(files, grammar)


def parse_candidate(text: str, grammar: Grammar, path: str | None = None) -> Program | Bundle:
    """A stored candidate's text parsed: a `Bundle` for a bundle's text (`bundle_text` of
    several files), else a `Program`."""
    files = split_bundle(text)
    if files is None:
        return Program(text, grammar, path=path)
    return Bundle(files, grammar)
