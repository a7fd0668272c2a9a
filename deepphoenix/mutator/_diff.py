"""Diffs: the edits that turn one variant into another, and any change that is not an edit.

Two sources are compared on their canonical templates (the `ast.dump` with every site
literal replaced by a placeholder). Equal templates mean every difference is a site value:
the diff is *grounded*. Otherwise the statements that differ are reported as ungrounded
changes. This is how a model's text is reduced to edits.
"""

from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass
from typing import Any

from deepphoenix.errors import SiteError
from deepphoenix.mutator._program import Edit, Program

__all__ = ["Diff", "diff_programs", "diff_text", "unified_diff"]

_MAX_REPORTED = 5


@dataclass(frozen=True, slots=True)
class Diff:
    """Edits at sites (document order) and a description of each ungrounded change."""

    edits: tuple[Edit, ...]
    ungrounded: tuple[str, ...] = ()

    @property
    def grounded(self) -> bool:
        return not self.ungrounded

    def to_dict(self) -> dict[str, Any]:
        return {
            "grounded": self.grounded,
            "edits": [e.to_dict() for e in self.edits],
            "ungrounded": list(self.ungrounded),
        }


def diff_programs(a: Program, b: Program) -> Diff:
    """Diff two programs parsed with the same grammar."""
    names = [site.name for site in a.sites if site.name in b.values]
    names += [spec.name for spec in a.grammar.hidden  # read from each source
              if spec.name in a.values and spec.name in b.values]
    edits = tuple(
        Edit(name, b.values[name]) for name in names
        if b.values[name] != a.values.get(name)
        or type(b.values[name]) is not type(a.values.get(name))
    )
    same_sites = [s.name for s in a.sites] == [s.name for s in b.sites]
    if same_sites and a._dump_fixed == b._dump_fixed and a._dump_order == b._dump_order:
        return Diff(edits)
    return Diff(edits, _describe(_template(a), _template(b)))


def diff_text(a: Program, text: str, path: str | None = None) -> Diff:
    """Diff a program against new text. Raises `ParseError` if the text is not Python;
    a text where the grammar's sites do not fit is all ungrounded."""
    try:
        b = Program(text, a.grammar, path=path)
    except SiteError as exc:
        from deepphoenix.mutator._source import parse_module

        parse_module(text, path)  # a parse error takes precedence over a site error
        return Diff((), (str(exc), *_describe(_template(a), _unparse(text))))
    return diff_programs(a, b)


def unified_diff(a: str, b: str, a_name: str = "a", b_name: str = "b", context: int = 3) -> str:
    """A unified diff of two texts (empty when equal)."""
    return "".join(difflib.unified_diff(
        a.splitlines(keepends=True), b.splitlines(keepends=True), a_name, b_name, n=context
    ))


def _template(program: Program) -> list[str]:
    """The program's statements, normalised, with each site literal shown as <name>."""
    lines = _unparse(program.template(lambda _i, site: f"__site_{site.name}__"))
    return [_restore(line, program) for line in lines]


def _restore(line: str, program: Program) -> str:
    for site in program.sites:
        line = line.replace(f"__site_{site.name}__", f"<{site.name}>")
    return line


def _unparse(text: str) -> list[str]:
    try:
        return ast.unparse(ast.parse(text)).splitlines()
    except (SyntaxError, RecursionError, ValueError):
        return text.splitlines()


def _describe(a_lines: list[str], b_lines: list[str]) -> tuple[str, ...]:
    changes: list[str] = []
    matcher = difflib.SequenceMatcher(a=a_lines, b=b_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        old = "; ".join(line.strip() for line in a_lines[i1:i2])
        new = "; ".join(line.strip() for line in b_lines[j1:j2])
        if tag == "insert":
            changes.append(f"added `{_clip(new)}`")
        elif tag == "delete":
            changes.append(f"removed `{_clip(old)}`")
        else:
            changes.append(f"changed `{_clip(old)}` to `{_clip(new)}`")
    if not changes:  # same statements, different site layout (a site moved or was renamed)
        changes.append("the grammar's sites are not where they were")
    if len(changes) > _MAX_REPORTED:
        changes = [*changes[:_MAX_REPORTED], f"and {len(changes) - _MAX_REPORTED} more"]
    return tuple(changes)


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
