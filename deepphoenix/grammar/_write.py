"""Grammars to TOML: the inverse of `parse_grammar`, for starter files (``deepphoenix
grammars --template``) a person then edits. ``parse_grammar(format_grammar(g))`` gives `g`
back."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from deepphoenix.grammar._grammar import Grammar
from deepphoenix.grammar._spec import Kind, OperatorKind, SiteSpec, Value
from deepphoenix.grammar._toml import default_operator, default_selectors

__all__ = ["format_grammar"]


def _toml(value: Value | Sequence[Value]) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # a TOML basic string


def format_grammar(grammar: Grammar, headings: Mapping[str, str] | None = None,
                   notes: Mapping[str, str] | None = None) -> str:
    """The TOML text of `grammar`. `headings` maps a site name to a comment line written
    before it (a group title); `notes` maps a site name to a comment after its header."""
    lines = [f"name = {_toml(grammar.name)}"]
    if grammar.description:
        lines.append(f"description = {_toml(grammar.description)}")
    if grammar.invariants:
        lines.append("invariants = [")
        lines.extend(f"    {{ expr = {_toml(i.text)}, description = {_toml(i.description)} }},"
                     for i in grammar.invariants)
        lines.append("]")
    for spec in grammar.sites:
        lines.append("")
        if headings and spec.name in headings:
            lines.append(f"# -- {headings[spec.name]} --")
        lines.append(f"[sites.{spec.name}]")
        if notes and spec.name in notes:
            lines.append(f"# {notes[spec.name]}")
        if spec.structure is not None:
            lines.extend(_structural_lines(spec))
            continue
        lines.extend(f"{key} = {text}" for key, text in _site_keys(spec))
    return "\n".join(lines) + "\n"


def _site_keys(spec: SiteSpec) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if spec.hidden:
        out.append(("hidden", "true"))
    elif spec.selectors != default_selectors(spec.name):
        out.append(("select", _toml([str(s) for s in spec.selectors])))
    out.append(("kind", _toml(spec.kind.value)))
    dom = spec.domain
    if dom.low is not None:
        out.append(("min", _toml(dom.low)))
    if dom.high is not None:
        out.append(("max", _toml(dom.high)))
    if dom.multiple_of:
        out.append(("multiple_of", _toml(dom.multiple_of)))
    if dom.values:
        out.append(("values", _toml(list(dom.values))))
    if spec.unresolved:  # a resolved one is written as its absolute domain
        assert spec.relative is not None
        out.append(("relative", spec.relative.to_toml()))
    if dom.choices:
        out.append(("choices", _toml(list(dom.choices))))
    if spec.dotted and spec.kind is Kind.CATEGORICAL:
        out.append(("dotted", "true"))
    if spec.proposable:
        out.extend(_operator_keys(spec))
    if spec.weight != 1.0:
        out.append(("weight", _toml(spec.weight)))
    if spec.default is not None:
        out.append(("default", _toml(spec.default)))
    if not spec.mutable and spec.derive is None:
        out.append(("mutable", "false"))
    for key, expression in (("derive", spec.derive), ("read", spec.read), ("when", spec.when)):
        if expression is not None:
            out.append((key, _toml(expression.text)))
    if spec.moves_with:
        out.append(("moves_with", _toml(list(spec.moves_with))))
    if spec.optional != (spec.kind is Kind.BOOL and spec.default is None):
        out.append(("optional", _toml(spec.optional)))
    if spec.nullable:
        out.append(("nullable", "true"))
    if spec.description:
        out.append(("description", _toml(spec.description)))
    return out


def _structural_lines(spec: SiteSpec) -> list[str]:
    structure = spec.structure
    assert structure is not None
    lines = [f"kind = {_toml(str(structure.placement))}"]
    if spec.selectors:
        lines.append(f"select = {_toml([str(s) for s in spec.selectors])}")
    for key in ("within", "after", "define"):
        if getattr(structure, key) is not None:
            lines.append(f"{key} = {_code(getattr(structure, key))}")
    for key, expression in (("derive", spec.derive), ("when", spec.when)):
        if expression is not None:
            lines.append(f"{key} = {_toml(expression.text)}")
    if spec.default is not None:
        lines.append(f"default = {_toml(spec.default)}")
    if spec.weight != 1.0:
        lines.append(f"weight = {_toml(spec.weight)}")
    if not spec.mutable and spec.derive is None:
        lines.append("mutable = false")
    if spec.optional:
        lines.append("optional = true")
    if spec.description:
        lines.append(f"description = {_toml(spec.description)}")
    lines.append(f"[sites.{spec.name}.alternatives]")
    lines.extend(f"{a.name} = {_code(a.code)}" for a in structure.alternatives)
    return lines


def _code(code: str) -> str:
    """Code as TOML: a multi-line literal string (no escapes) where it can be one."""
    if "\n" in code and "'''" not in code:
        return "'''\n" + code + "\n'''"
    return json.dumps(code)


def _operator_keys(spec: SiteSpec) -> list[tuple[str, str]]:
    op, dom = spec.operator, spec.domain
    implied = default_operator(spec.kind, dom.low, dom.high, bool(dom.values), dom.multiple_of)
    # An unresolved relative domain's default operator is chosen when it resolves.
    chosen = spec.unresolved and spec.relative is not None and not spec.relative.default_operator
    out: list[tuple[str, str]] = []
    if op.kind is not implied.kind or chosen:
        out.append(("mutation", _toml(op.kind.value)))
    if op.kind is OperatorKind.STEP and op.k != 1:
        out.append(("step", _toml(op.k)))
    if op.kind is OperatorKind.SCALE and (op.low, op.high) != (0.01, 0.5):
        out.append(("scale", _toml([op.low, op.high])))
    return out
