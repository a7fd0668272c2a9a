"""Literal nodes: which CST expressions are literals, their values, and how values are
written back.

Literals are ints, floats, negated ints and floats, ``True``/``False``, plain strings, and
dotted names (``nn.ReLU``) for categorical sites that declare ``dotted``.
"""

from __future__ import annotations

import ast
import math
import re

import libcst as cst
import libcst.matchers as m

from deepphoenix.grammar import INT_KINDS, Kind, SiteSpec, Value, same_choice

__all__ = [
    "LiteralKind",
    "dotted_name",
    "literal_of",
    "parse_value_text",
    "render_value",
    "value_fits",
]

_NUMBER = m.Integer() | m.Float()
NUMERIC = _NUMBER | m.UnaryOperation(operator=m.Minus(), expression=_NUMBER)
BOOLEAN = m.Name("True") | m.Name("False")
STRING = m.SimpleString()

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_BARE_NUMBER = re.compile(r"^-?[0-9][0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)?$|^-?\.[0-9]+$")
_MAX_LITERAL = 64  # longer "literals" in model text are rejected, never converted


class LiteralKind:
    """What a literal node is, as a string tag: number, bool, string or name."""

    NUMBER = "number"
    BOOL = "bool"
    STRING = "string"
    NAME = "name"
    NONE = "none"  # the literal None: an unset value of a nullable site


def dotted_name(node: cst.BaseExpression) -> str | None:
    """``a.b.c`` for a chain of names and attributes, else None."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        head = dotted_name(node.value)
        return None if head is None else f"{head}.{node.attr.value}"
    return None


def literal_of(node: cst.BaseExpression) -> tuple[str, Value] | None:
    """The tag and value of a literal node, or None if the node is not a literal."""
    if m.matches(node, NUMERIC):
        if isinstance(node, cst.UnaryOperation):
            inner = literal_of(node.expression)
            assert inner is not None
            value = inner[1]
            assert isinstance(value, int | float) and not isinstance(value, bool)
            return LiteralKind.NUMBER, -value
        text = node.value  # type: ignore[attr-defined]
        try:
            return LiteralKind.NUMBER, int(text, 0) if isinstance(node, cst.Integer) else float(
                text
            )
        except ValueError:  # an int of more than 4300 digits
            return None
    if m.matches(node, BOOLEAN):
        return LiteralKind.BOOL, node.value == "True"  # type: ignore[attr-defined]
    if m.matches(node, STRING):
        assert isinstance(node, cst.SimpleString)
        prefix = node.prefix.lower()
        if "b" in prefix or "f" in prefix:
            return None
        try:
            value = ast.literal_eval(node.value)
        except (ValueError, SyntaxError):
            return None
        return (LiteralKind.STRING, value) if isinstance(value, str) else None
    if m.matches(node, m.Name("None")):
        return LiteralKind.NONE, "None"
    name = dotted_name(node)
    if name is not None and name not in ("None", "True", "False"):
        return LiteralKind.NAME, name
    return None


def value_fits(spec: SiteSpec, tag: str, value: Value) -> bool:
    """Whether a literal of this tag can hold the site's kind. A categorical site holds
    strings, dotted names (with `dotted`), or bare numbers (choices such as ``768``)."""
    kind = spec.kind
    if tag == LiteralKind.NONE:
        return spec.nullable
    if kind is Kind.BOOL:
        return tag == LiteralKind.BOOL
    if kind in INT_KINDS:
        return tag == LiteralKind.NUMBER and isinstance(value, int)
    if kind in (Kind.FLOAT, Kind.LOG_FLOAT):
        return tag == LiteralKind.NUMBER
    if spec.dotted:
        return tag == LiteralKind.NAME
    return tag in (LiteralKind.STRING, LiteralKind.NUMBER)


def normalise(spec: SiteSpec, value: Value, text: str = "") -> Value:
    """Ints written in a float site read as floats; a number in a categorical site reads
    as its text (``768`` is the choice ``"768"``)."""
    if spec.kind in (Kind.FLOAT, Kind.LOG_FLOAT) and isinstance(value, int):
        return float(value)
    if spec.kind is Kind.CATEGORICAL and not isinstance(value, str):
        return same_choice(text, spec.domain.choices) or text
    return value


def render_value(spec: SiteSpec, value: Value, original: str = "") -> str:
    """The source text of a literal holding `value`, in the style of `original`."""
    kind = spec.kind
    if spec.structure is not None:
        return str(value)  # an alternative's name, as edit scripts write it
    if kind is Kind.BOOL:
        return "True" if value else "False"
    if kind in INT_KINDS:
        return str(int(value))
    if kind in (Kind.FLOAT, Kind.LOG_FLOAT):
        number = float(value)
        # inf and nan have no literal; an expression keeps the text valid Python.
        return repr(number) if math.isfinite(number) else f"float('{number}')"
    assert isinstance(value, str)
    if spec.dotted:
        return value
    if original and original[0] in "0123456789-." and _is_number(value):
        return value  # a bare-number choice stays bare
    literal = repr(value)  # escapes quotes, backslashes and unprintable characters
    wants_double = original.lstrip("rRuU").startswith('"')
    if wants_double and literal.startswith("'") and '"' not in value:
        literal = '"' + literal[1:-1].replace("\\'", "'") + '"'
    return literal


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text)) and _BARE_NUMBER.match(text) is not None
    except ValueError:
        return False


def parse_value_text(spec: SiteSpec, text: str) -> Value | None:
    """A value from literal text written by a model (edit scripts), or None if it is not a
    literal of the site's kind. Uses `ast.literal_eval`, which evaluates no code."""
    text = text.strip()
    if not text or len(text) > _MAX_LITERAL:
        return None
    if spec.structure is not None:  # an alternative's name, bare or quoted
        name = text[1:-1] if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"" else text
        return name if name in spec.structure.names else None
    if spec.kind is Kind.CATEGORICAL and spec.dotted:
        return text if _DOTTED.match(text) else None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if isinstance(value, bool):
        return value if spec.kind is Kind.BOOL else None
    if spec.kind is Kind.CATEGORICAL and isinstance(value, int | float):
        return same_choice(text, spec.domain.choices) or text
    if isinstance(value, int):
        if spec.kind in INT_KINDS:
            return value
        return float(value) if spec.kind in (Kind.FLOAT, Kind.LOG_FLOAT) else None
    if isinstance(value, float):
        return value if spec.kind in (Kind.FLOAT, Kind.LOG_FLOAT) else None
    if isinstance(value, str):
        return value if spec.kind is Kind.CATEGORICAL else None
    return None
