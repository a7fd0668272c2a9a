"""Structural sites: named code alternatives for an expression, statements, or a definition.

A structural site is a categorical site whose choices are its alternatives' names; the
file's own code is one of them. Each alternative is parsed when the grammar loads (libcst,
so the mutator can splice it, and `ast`, whose dump is how a source's code is recognised
as an alternative whatever its formatting). Nothing here runs the code.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass
from enum import StrEnum

import libcst as cst

from deepphoenix.errors import GrammarError

__all__ = [
    "PLACEMENT_RULES",
    "Alternative",
    "Placement",
    "PlacementRule",
    "Structure",
    "StructureError",
    "element_key",
    "expression_key",
    "make_structure",
    "statement_keys",
]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class StructureError(GrammarError):
    """A structural site's declaration is wrong; `key` is the TOML key at fault (an
    alternative's name, 'after', 'within'), so the loader can point at its line."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class Placement(StrEnum):
    """What a structural site's code is, which decides how it is found and spliced."""

    EXPRESSION = "expression"  # one expression, e.g. the value bound to self.ln_1
    STATEMENT = "statement"  # consecutive statements (a short block); "" is absent
    DEFINITION = "definition"  # a class or def (with helper definitions before/after it)


@dataclass(frozen=True, slots=True)
class Alternative:
    """One named piece of code a structural site may hold.

    `code` is dedented, without leading or trailing blank lines; `keys` is the `ast.dump`
    of the expression, or of each top-level statement (one per line of a block).
    """

    name: str
    code: str
    keys: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.keys


@dataclass(frozen=True, slots=True)
class Structure:
    """The alternatives of a structural site and how the site is found in a source.

    `within` is a glob on the dotted class/function path whose bodies hold the site (the
    same matching as a selector's ``in``); `after` is an anchor statement's keys (the site
    starts right after it) or, for a bare name, the class or def of that name; `define`
    is the name a definition site's alternatives all define.
    """

    placement: str  # a `Placement`, or a placement registered with `register_placement`
    alternatives: tuple[Alternative, ...]
    within: str | None = None
    after: str | None = None
    after_keys: tuple[str, ...] = ()
    define: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.alternatives)

    def alternative(self, name: str) -> Alternative:
        for alternative in self.alternatives:
            if alternative.name == name:
                return alternative
        raise KeyError(name)

    def by_keys(self) -> dict[tuple[str, ...], str]:
        return {a.keys: a.name for a in self.alternatives}

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "placement": str(self.placement),
            "alternatives": {a.name: a.code for a in self.alternatives},
        }
        for key in ("within", "after", "define"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


def _tidy(code: str) -> str:
    return textwrap.dedent(code.replace("\r\n", "\n")).strip("\n").rstrip()


def statement_keys(code: str) -> tuple[str, ...]:
    """The key of each top-level statement line of `code`: the `ast.dump` of the
    statements on it (``a = 1; b = 2`` is one line, one key). Raises SyntaxError."""
    module = cst.parse_module(code + "\n") if code else cst.parse_module("")
    return tuple(element_key(module.code_for_node(element)) for element in module.body)


def element_key(code: str) -> str:
    """The key of one statement line (its code as libcst writes it, maybe indented)."""
    text = textwrap.dedent(code)
    try:
        body = ast.parse(text).body
    except SyntaxError:  # a multi-line string that dedent cannot see through
        body = ast.parse("if True:\n" + textwrap.indent(code, " ")).body
        assert isinstance(body[0], ast.If)
        body = body[0].body
    return "\n".join(ast.dump(statement) for statement in body)


def expression_key(code: str) -> str:
    """The key of an expression (parenthesised, so one written over lines parses)."""
    return ast.dump(ast.parse(f"({code.strip()}\n)", mode="eval").body)


def _defines(code: str) -> set[str]:
    return {
        node.name for node in ast.parse(code).body
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
    }


@dataclass(frozen=True, slots=True)
class PlacementRule:
    """What a placement's declaration may say and how its alternatives are parsed: one
    entry of `PLACEMENT_RULES` per `Placement` (the mutator's locators are the other half:
    how a site of that placement is found in a source and written there).

    `selectable`: found by a selector (``select``); `takes_after`: placed after an anchor;
    `needs_define`: names the class or def it swaps; `trailing_annotation`:
    ``# deepphoenix: NAME`` at the end of a line marks it (else on its own line before it).
    """

    placement: str
    selectable: bool = False
    takes_after: bool = True
    needs_define: bool = False
    trailing_annotation: bool = False

    def keys(self, name: str, code: str, define: str | None) -> tuple[str, ...]:
        """The alternative's keys, one `ast.dump` per statement line (empty: absent);
        `GrammarError` when the code is not of this placement's shape."""
        try:
            ast.parse(code)
            return statement_keys(code)
        except (SyntaxError, cst.ParserSyntaxError) as exc:
            raise GrammarError(f"alternative {name!r} is not Python statements: "
                               f"{_reason(exc)}") from None


@dataclass(frozen=True, slots=True)
class _ExpressionRule(PlacementRule):
    def keys(self, name: str, code: str, define: str | None) -> tuple[str, ...]:
        what = f"alternative {name!r}"
        if not code:
            raise GrammarError(f"{what} is empty; an expression site cannot be absent (use a "
                               "statement site with an empty alternative)")
        try:
            key = expression_key(code)  # Python's own message first: the one people know
            cst.parse_expression(code if "\n" not in code else f"({code})")
            return (key,)
        except (SyntaxError, cst.ParserSyntaxError) as exc:
            raise GrammarError(f"{what} is not one Python expression: {_reason(exc)}") from None


@dataclass(frozen=True, slots=True)
class _DefinitionRule(PlacementRule):
    def keys(self, name: str, code: str, define: str | None) -> tuple[str, ...]:
        what = f"alternative {name!r}"
        keys = PlacementRule.keys(self, name, code, define)
        if not code:
            raise GrammarError(f"{what} is empty; a definition site swaps one definition for "
                               "another")
        assert define is not None
        if define not in _defines(code):
            raise GrammarError(f"{what} does not define {define!r} at its top level (a class "
                               f"or def named {define})")
        return keys


PLACEMENT_RULES: dict[str, PlacementRule] = {
    Placement.EXPRESSION: _ExpressionRule(Placement.EXPRESSION, selectable=True,
                                          takes_after=False, trailing_annotation=True),
    Placement.STATEMENT: PlacementRule(Placement.STATEMENT),
    Placement.DEFINITION: _DefinitionRule(Placement.DEFINITION, needs_define=True),
}


def make_structure(placement: str, raw: dict[str, object], *, within: str | None,
                   after: str | None, define: str | None) -> Structure:
    """Parse and check a site's alternatives; `GrammarError` says which and why (the
    caller adds the file, line and site)."""
    rule = PLACEMENT_RULES[placement]
    if len(raw) < 2:
        raise StructureError("a structural site needs two or more alternatives (the file's "
                             "own code is one of them)")
    alternatives: list[Alternative] = []
    seen: dict[tuple[str, ...], str] = {}
    for name, value in raw.items():
        if not _IDENT.match(name):
            raise StructureError(f"alternative name {name!r} must be a Python identifier (it "
                                 "is the value edits write, e.g. mlp=swiglu)", name)
        if not isinstance(value, str):
            raise StructureError(f"alternative {name!r} must be a string of code, got "
                                 f"{value!r}", name)
        code = _tidy(value)
        try:
            keys = rule.keys(name, code, define)
        except GrammarError as exc:
            raise StructureError(str(exc), name) from None
        if keys in seen:
            raise StructureError(f"alternatives {seen[keys]!r} and {name!r} are the same code",
                                 name)
        seen[keys] = name
        alternatives.append(Alternative(name, code, keys))
    if all(a.empty for a in alternatives):
        raise StructureError("every alternative is empty")
    after_keys: tuple[str, ...] = ()
    if after is not None:
        if not rule.takes_after:
            raise StructureError("'after' places statements; an expression site uses "
                                 "'select'", "after")
        if not _IDENT.match(after.strip()):
            try:
                after_keys = statement_keys(_tidy(after))
            except (SyntaxError, cst.ParserSyntaxError) as exc:
                raise StructureError(f"'after' is neither a definition name nor a statement: "
                                     f"{_reason(exc)}", "after") from None
            if len(after_keys) != 1:
                raise StructureError("'after' must be one statement (the one the site "
                                     "follows)", "after")
    if within is not None and not re.match(r"^[A-Za-z0-9_.*?\[\]]+$", within):
        raise StructureError(f"'within' {within!r} is not a dotted class/function name or "
                             "glob", "within")
    return Structure(placement, tuple(alternatives), within=within,
                     after=after.strip() if after is not None else None,
                     after_keys=after_keys, define=define)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"{exc.msg} (line {exc.lineno})"
    if isinstance(exc, cst.ParserSyntaxError):
        return f"{exc.message} (line {exc.raw_line})"
    return str(exc)
