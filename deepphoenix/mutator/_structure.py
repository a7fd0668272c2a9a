"""Structural sites in a source: where each one is, which alternative it holds, and how a
chosen alternative's code is written there.

An expression site's span is the expression; a statement or definition site's span is
whole lines (from the start of its first statement's line through the newline of its
last), so a block is spliced by lines, indented like the site. A site is found by its
grammar's rule (a selector, an `after` anchor, `within` plus the alternatives' code, or
the `define` name) or by an annotation comment ``# deepphoenix: NAME`` in the source; the
code found there is recognised by its `ast.dump` (formatting and comments do not matter).
Code that is none of the alternatives is a `SiteError`, which is how a model's text that
writes its own code at a site is rejected as ungrounded.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import libcst as cst

from deepphoenix.errors import GrammarError, SiteError, did_you_mean
from deepphoenix.grammar import (
    PLACEMENT_RULES,
    Alternative,
    Grammar,
    Kind,
    Placement,
    PlacementRule,
    SiteSpec,
    Structure,
    expression_key,
)
from deepphoenix.mutator._bindings import Binding, select_bindings
from deepphoenix.mutator._names import check_names
from deepphoenix.mutator._scan import Annotation, Source, Suite, annotation_name, in_scope

__all__ = ["LOCATORS", "Located", "Locator", "find_structural", "register_placement",
           "render_alternative"]

_DEFINITIONS = ("ClassDef(name='{}'", "FunctionDef(name='{}'", "AsyncFunctionDef(name='{}'")


@dataclass(frozen=True, slots=True)
class Located:
    """A structural site found in a source: the alternative it holds and its span.
    `indent` is None for an expression, else the indentation its lines are written with."""

    name: str
    value: str
    start: int
    end: int
    line: int
    column: int
    indent: str | None
    how: str  # what found it: the selector, "after …", "within …", "annotation"
    label: str


def render_alternative(spec: SiteSpec, value: str, indent: str | None) -> str:
    """The text a site holding alternative `value` has: the expression, or the lines."""
    assert spec.structure is not None
    return LOCATORS[spec.structure.placement].render(spec.structure.alternative(value).code,
                                                     indent)


def find_structural(module: cst.Module, text: str, grammar: Grammar, path: str | None,
                    bindings: list[Binding]) -> list[Located]:
    """The grammar's structural sites in a source (document order of the grammar).

    Raises `SiteError` for an annotation naming no structural site of the grammar, a site
    found nowhere or in several places, or code at a site that is none of its alternatives.
    """
    specs = [spec for spec in grammar.sites if spec.structural]
    if not specs:  # annotations belong to grammars with structural sites
        return []
    by_code = any(_locator(s).needs_expressions(s) for s in specs)
    source = Source(module, text, path, expressions=by_code)
    annotations = _check_annotations(source, grammar)
    found: list[Located] = []
    for spec in specs:
        located = _locator(spec).locate(source, spec, annotations.get(spec.name), bindings)
        if located is None:
            if spec.optional or spec.default is not None:
                continue
            raise SiteError(_missing(spec, grammar, source.where))
        found.append(located)
    return found


def _locator(spec: SiteSpec) -> Locator:
    assert spec.structure is not None
    return LOCATORS[spec.structure.placement]


def _check_annotations(source: Source, grammar: Grammar) -> dict[str, Annotation]:
    by_name: dict[str, Annotation] = {}
    placed = {id(a.comment) for a in source.collector.annotations}
    where = source.where
    for comment in source.collector.comments:
        line = source.positions[comment].start.line
        name = annotation_name(comment)
        if id(comment) not in placed:
            raise SiteError(f"{where}:{line}: the annotation '# deepphoenix: {name}' is not "
                            "before a statement or after a line's code; put it on its own "
                            "line before the site's first statement, or after the line whose "
                            "value is the site")
    for annotation in source.collector.annotations:
        name = annotation.name
        at = f"{where}:{annotation.line}"
        if not grammar.has_site(name):
            structural = [s.name for s in grammar.sites if s.structural]
            raise SiteError(f"{at}: the annotation '# deepphoenix: {name}' names no site of "
                            f"grammar {grammar.name!r}.{did_you_mean(name, structural)}")
        spec = grammar.site(name)
        if spec.structure is None:
            raise SiteError(f"{at}: the annotation names site {name!r}, a {spec.kind} literal "
                            "site, which its selector finds; annotations mark structural "
                            "sites")
        if name in by_name:
            raise SiteError(f"{at}: site {name!r} is annotated twice (also at line "
                            f"{by_name[name].line})")
        placement = spec.structure.placement
        if annotation.trailing and not PLACEMENT_RULES[placement].trailing_annotation:
            raise SiteError(f"{at}: {name!r} is a {placement} site; put "
                            f"'# deepphoenix: {name}' on its own line before its first "
                            "statement")
        by_name[name] = annotation
    return by_name


class Locator:
    """How the sites of one `Placement` are found in a source and how a chosen
    alternative's code is written there: one entry of `LOCATORS` per placement (the
    grammar's `PLACEMENT_RULES` are the other half: what a declaration may say)."""

    def locate(self, source: Source, spec: SiteSpec, annotation: Annotation | None,
               bindings: list[Binding]) -> Located | None:
        """The site in `source` (None: not there); `SiteError` when it is ambiguous or
        holds code that is none of its alternatives."""
        raise NotImplementedError

    def render(self, code: str, indent: str | None) -> str:
        """The text of a site holding `code`: whole lines, indented like the site."""
        return "".join((indent or "") + line + "\n" if line.strip() else "\n"
                       for line in code.split("\n")) if code else ""

    def rule(self, spec: SiteSpec) -> str:
        """What finds the site, for the message when nothing does."""
        return "the code of one of its alternatives"

    def needs_expressions(self, spec: SiteSpec) -> bool:
        """Whether finding `spec` needs every expression of the source collected."""
        return False


class _ExpressionLocator(Locator):
    """An expression: by its selector, by an annotation at the end of its line, or by the
    one expression in `within` whose code is an alternative's."""

    def locate(self, source: Source, spec: SiteSpec, annotation: Annotation | None,
               bindings: list[Binding]) -> Located | None:
        return _locate_expression(source, spec, annotation, bindings)

    def render(self, code: str, indent: str | None) -> str:
        return code if "\n" not in code else f"({code})"

    def rule(self, spec: SiteSpec) -> str:
        return " | ".join(str(s) for s in spec.selectors) if spec.selectors else super().rule(spec)

    def needs_expressions(self, spec: SiteSpec) -> bool:
        return not spec.selectors


class _StatementLocator(Locator):
    """Consecutive statements: by an annotation on the line before them, right after an
    `after` anchor (where an empty alternative is absent), or the one run of statements in
    `within` that is an alternative's code."""

    def locate(self, source: Source, spec: SiteSpec, annotation: Annotation | None,
               bindings: list[Binding]) -> Located | None:
        structure = spec.structure
        assert structure is not None
        if annotation is not None:
            assert annotation.suite is not None
            return _match_at(source, spec, annotation.suite, annotation.index, "annotation",
                             allow_empty=True)
        suites = _suites(source, structure)
        if structure.after is not None:
            return self._after(source, spec, suites)
        if any(a.empty for a in structure.alternatives):
            raise SiteError(f"site {spec.name!r} may be absent (an empty alternative) so it "
                            "needs a place: give it 'after' in the grammar, or put "
                            f"'# deepphoenix: {spec.name}' on its own line in {source.where} "
                            "where it goes")
        return self._by_code(source, spec, suites)

    def rule(self, spec: SiteSpec) -> str:
        assert spec.structure is not None
        if spec.structure.after is not None:
            return f"after = {spec.structure.after!r}"
        return super().rule(spec)

    @staticmethod
    def _after(source: Source, spec: SiteSpec, suites: list[Suite]) -> Located | None:
        structure = spec.structure
        assert structure is not None
        anchors = [(suite, index) for suite in suites for index, statement in
                   enumerate(suite.body) if _is_anchor(source, structure, statement)]
        if not anchors:
            return None
        if len(anchors) > 1:
            lines = ", ".join(str(source.first_line(s.body[i])) for s, i in anchors)
            raise SiteError(f"site {spec.name!r}: its anchor after = {structure.after!r} "
                            f"is at {len(anchors)} places in {source.where} (lines {lines}); "
                            "narrow it with 'within'")
        suite, index = anchors[0]
        return _match_at(source, spec, suite, index + 1, f"after {structure.after}",
                         allow_empty=True)

    @staticmethod
    def _by_code(source: Source, spec: SiteSpec, suites: list[Suite]) -> Located | None:
        structure = spec.structure
        assert structure is not None
        matches: list[tuple[Suite, int, str, int]] = []
        for suite in suites:
            keys = source.keys(suite.body)
            for index in range(len(keys)):
                for alternative in _longest_first(structure.alternatives):
                    size = len(alternative.keys)
                    if size and keys[index:index + size] == alternative.keys:
                        matches.append((suite, index, alternative.name, size))
                        break
        if not matches:
            return None
        if len(matches) > 1:
            lines = ", ".join(str(source.first_line(s.body[i])) for s, i, _, _ in matches)
            raise SiteError(f"site {spec.name!r} matches {len(matches)} places in "
                            f"{source.where} (lines {lines}); narrow it with 'within' or "
                            "'after', or annotate it")
        suite, index, value, size = matches[0]
        how = f"within {structure.within}" if structure.within else "its code"
        return _lines(source, spec, suite, index, size, value, how)


class _DefinitionLocator(Locator):
    """A class or def named `define` (at module level, or in `within`) with the helpers an
    alternative brings before or after it; or the definition after an annotation."""

    def locate(self, source: Source, spec: SiteSpec, annotation: Annotation | None,
               bindings: list[Binding]) -> Located | None:
        structure = spec.structure
        assert structure is not None
        if annotation is not None:
            assert annotation.suite is not None
            return _match_at(source, spec, annotation.suite, annotation.index, "annotation",
                             allow_empty=False)
        return _locate_definition(source, spec, _suites(source, structure))

    def rule(self, spec: SiteSpec) -> str:
        assert spec.structure is not None
        return f"define = {spec.structure.define!r}"


LOCATORS: dict[str, Locator] = {
    Placement.EXPRESSION: _ExpressionLocator(),
    Placement.STATEMENT: _StatementLocator(),
    Placement.DEFINITION: _DefinitionLocator(),
}


def register_placement(rule: PlacementRule, locator: Locator) -> None:
    """Add a kind of structural site named `rule.placement`: `rule` says what its grammar
    declaration may hold and how its alternatives are parsed, `locator` how a site of that
    kind is found in a source and written there. Grammars loaded afterwards may use
    ``kind = "<name>"``; call it when your package is imported. `GrammarError` if the name
    is already a kind of site."""
    name = str(rule.placement)
    if name in PLACEMENT_RULES or name in {k.value for k in Kind}:
        raise GrammarError(f"placement {name!r} is already a kind of site")
    PLACEMENT_RULES[name] = rule
    LOCATORS[name] = locator


def _suites(source: Source, structure: Structure) -> list[Suite]:
    return [s for s in source.collector.suites if in_scope(structure.within, s.scope)]


def _longest_first(alternatives: Sequence[Alternative]) -> list[Alternative]:
    return sorted(alternatives, key=lambda a: -len(a.keys))


def _is_anchor(source: Source, structure: Structure, statement: cst.BaseStatement) -> bool:
    if structure.after_keys:
        return source.key(statement) == structure.after_keys[0]
    return (isinstance(statement, cst.ClassDef | cst.FunctionDef)
            and statement.name.value == structure.after)


def _match_at(source: Source, spec: SiteSpec, suite: Suite, index: int, how: str,
              allow_empty: bool) -> Located:
    structure = spec.structure
    assert structure is not None
    for alternative in _longest_first(structure.alternatives):
        size = len(alternative.keys)
        if size and source.matches(suite.body, index, alternative.keys):
            return _lines(source, spec, suite, index, size, alternative.name, how)
    empty = next((a.name for a in structure.alternatives if a.empty), None)
    if empty is not None and allow_empty:
        return _lines(source, spec, suite, index, 0, empty, how)
    line = source.first_line(suite.body[index]) if index < len(suite.body) else (
        source.positions[suite.body[-1]].end.line + 1 if suite.body else 1)
    found = source.module.code_for_node(suite.body[index]) if index < len(suite.body) else ""
    raise SiteError(_not_an_alternative(spec, source.where, line, found))


def _not_an_alternative(spec: SiteSpec, where: str, line: int, found: str = "") -> str:
    assert spec.structure is not None
    return (f"site {spec.name!r} at {where}:{line} holds code that is none of its "
            f"alternatives ({', '.join(spec.structure.names)}); the file's own code must be "
            f"one of them (compared ignoring formatting and comments){_closest(spec, found)}")


def _closest(spec: SiteSpec, found: str) -> str:
    """Where the file's code first departs from the alternative most like it."""
    assert spec.structure is not None
    lines = [line.strip() for line in found.splitlines() if line.strip()]
    if not lines:
        return ""
    best, ratio = None, 0.0
    for alternative in spec.structure.alternatives:
        theirs = [line.strip() for line in alternative.code.splitlines() if line.strip()]
        score = difflib.SequenceMatcher(a=lines, b=theirs, autojunk=False).ratio()
        if score > ratio:
            best, ratio = (alternative.name, theirs), score
    if best is None:
        return ""
    name, theirs = best
    for number, (mine, other) in enumerate(zip(lines, theirs, strict=False), start=1):
        if mine != other:
            return (f"; closest is {name!r}, which differs at its code line {number}: the "
                    f"file has {_clip(mine)!r}, the grammar {_clip(other)!r}")
    return f"; closest is {name!r}, which differs in its length or layout"


def _clip(text: str, limit: int = 50) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _lines(source: Source, spec: SiteSpec, suite: Suite, index: int, size: int,
           value: str, how: str) -> Located:
    body = suite.body
    if size:
        first, last = body[index], body[index + size - 1]
        line = source.first_line(first)
        start = source.line_start(line)
        end = source.after_line(source.positions[last].end.line)
        indent = source.indent(first)
    elif index < len(body):  # absent: the place is the start of the next statement's line
        line = source.first_line(body[index])
        start = end = source.line_start(line)
        indent = source.indent(body[index])
    else:  # absent at the end of a body: after the last statement
        line = source.positions[body[index - 1]].end.line + 1
        start = end = source.after_line(line - 1)
        indent = source.indent(body[index - 1])
    label = f"{suite.scope or 'module'}: {'lines' if size > 1 else 'line'} {line}"
    if size > 1:
        label += f"-{source.positions[body[index + size - 1]].end.line}"
    return Located(spec.name, value, start, end, line, len(indent) + 1, indent, how, label)


def _locate_definition(source: Source, spec: SiteSpec, suites: list[Suite]) -> Located | None:
    structure = spec.structure
    assert structure is not None and structure.define is not None
    define = structure.define
    scoped = [s for s in suites if structure.within is not None or s.scope is None]
    places = [(suite, index) for suite in scoped for index, statement in enumerate(suite.body)
              if isinstance(statement, cst.ClassDef | cst.FunctionDef)
              and statement.name.value == define]
    if not places:
        return None
    if len(places) > 1:
        lines = ", ".join(str(source.first_line(s.body[i])) for s, i in places)
        raise SiteError(f"site {spec.name!r}: {define!r} is defined at {len(places)} places "
                        f"in {source.where} (lines {lines}); narrow it with 'within'")
    suite, index = places[0]
    heads = tuple(p.format(define) for p in _DEFINITIONS)
    for alternative in _longest_first(structure.alternatives):
        at = next(i for i, k in enumerate(alternative.keys) if k.startswith(heads))
        first = index - at
        size = len(alternative.keys)
        if first >= 0 and source.matches(suite.body, first, alternative.keys):
            located = _lines(source, spec, suite, first, size, alternative.name,
                             f"define {define}")
            if suite.scope is None:
                check_names(source, spec, located.start, located.end)
            return located
    raise SiteError(_not_an_alternative(spec, source.where, source.first_line(suite.body[index]),
                                        source.module.code_for_node(suite.body[index])))


def _locate_expression(source: Source, spec: SiteSpec, annotation: Annotation | None,
                       bindings: list[Binding]) -> Located | None:
    structure = spec.structure
    assert structure is not None
    if annotation is not None:
        statement = annotation.statement
        node = _statement_value(statement)
        if node is None:
            raise SiteError(f"{source.where}:{annotation.line}: '# deepphoenix: {spec.name}' "
                            "marks an expression site, but the line holds no assigned, "
                            "returned or bare expression")
        position = source.positions[node]
        start = source.offset(position.start.line, position.start.column)
        end = source.offset(position.end.line, position.end.column)
        how, label, line, column = "annotation", f"line {position.start.line}", (
            position.start.line), position.start.column + 1
    elif not spec.selectors:
        return _expression_by_code(source, spec)
    else:
        matches: dict[int, tuple[Binding, str]] = {}
        for selector in spec.selectors:
            for binding in select_bindings(bindings, selector):
                matches.setdefault(binding.start, (binding, str(selector)))
        if not matches:
            return None
        if len(matches) > 1:
            lines = ", ".join(f"line {b.line} ({b.label})" for b, _ in matches.values())
            raise SiteError(f"site {spec.name!r} matches {len(matches)} places in "
                            f"{source.where}: {lines}; narrow its selector (owner or #index)")
        binding, how = next(iter(matches.values()))
        start, end, label, line, column = (binding.start, binding.end, binding.label,
                                           binding.line, binding.column)
    code = source.text[start:end]
    try:
        key = expression_key(code)
    except SyntaxError:
        key = ""
    value = structure.by_keys().get((key,))
    if value is None:
        raise SiteError(_not_an_alternative(spec, source.where, line, code))
    return Located(spec.name, value, start, end, line, column, None, how, label)


def _expression_by_code(source: Source, spec: SiteSpec) -> Located | None:
    """The one expression in `within` (default: anywhere) whose code is an alternative's;
    an alternative nested in another's match belongs to the outer one."""
    structure = spec.structure
    assert structure is not None
    wanted = structure.by_keys()
    kinds = {type(cst.parse_expression(f"({a.code})")) for a in structure.alternatives}
    found: list[tuple[int, int, str, int, int]] = []
    for node, scope in source.collector.expressions:
        if type(node) not in kinds or not in_scope(structure.within, scope):
            continue
        position = source.positions[node]
        start = source.offset(position.start.line, position.start.column)
        end = source.offset(position.end.line, position.end.column)
        try:
            value = wanted.get((expression_key(source.text[start:end]),))
        except SyntaxError:
            continue
        if value is not None:
            found.append((start, end, value, position.start.line, position.start.column + 1))
    outer = [f for f in found if not any(o[0] <= f[0] and f[1] <= o[1] and o != f
                                         for o in found)]
    if not outer:
        return None
    if len(outer) > 1:
        lines = ", ".join(str(f[3]) for f in outer)
        raise SiteError(f"site {spec.name!r}: its alternatives' code is at {len(outer)} places "
                        f"in {source.where} (lines {lines}); narrow it with 'within' or "
                        "'select', or annotate it")
    start, end, value, line, column = outer[0]
    how = f"within {structure.within}" if structure.within else "its code"
    return Located(spec.name, value, start, end, line, column, None, how, f"line {line}")


def _statement_value(statement: cst.BaseStatement | None) -> cst.BaseExpression | None:
    if not isinstance(statement, cst.SimpleStatementLine) or not statement.body:
        return None
    small = statement.body[0]
    if isinstance(small, cst.Assign | cst.AugAssign | cst.Expr):
        return small.value
    if isinstance(small, cst.AnnAssign | cst.Return):
        return small.value
    return None


def _missing(spec: SiteSpec, grammar: Grammar, where: str) -> str:
    structure = spec.structure
    assert structure is not None
    rule = _locator(spec).rule(spec)
    scope = f" within {structure.within!r}" if structure.within else ""
    return (f"site {spec.name!r} of grammar {grammar.name!r} ({structure.placement}): "
            f"{rule}{scope} matches nothing in {where} (fix the grammar, annotate the site "
            f"with '# deepphoenix: {spec.name}', or make it optional = true)")
