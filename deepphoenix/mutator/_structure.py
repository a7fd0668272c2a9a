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

import ast
import builtins
import difflib
import re
import symtable
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from deepphoenix.errors import SiteError, did_you_mean
from deepphoenix.grammar import (
    Alternative,
    Grammar,
    Placement,
    SiteSpec,
    Structure,
    element_key,
    expression_key,
)
from deepphoenix.mutator._bindings import Binding, select_bindings

__all__ = ["Located", "find_structural", "render_alternative"]

_ANNOTATION = re.compile(r"^#\s*deepphoenix:\s*(\S+)\s*$")
_BUILTINS = frozenset(dir(builtins)) | {"__name__", "__file__", "__doc__", "__spec__",
                                        "__package__", "__builtins__", "__loader__"}
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
    code = spec.structure.alternative(value).code
    if indent is None:
        return code if "\n" not in code else f"({code})"
    return "".join((indent + line if line.strip() else "") + "\n" for line in code.split("\n")
                   ) if code else ""


@dataclass
class _Suite:
    scope: str | None
    body: Sequence[cst.BaseStatement]


@dataclass
class _Annotation:
    name: str
    line: int
    trailing: bool
    suite: _Suite | None = None
    index: int = 0
    statement: cst.BaseStatement | None = None
    comment: cst.Comment | None = None


@dataclass
class _Collector(cst.CSTVisitor):
    METADATA_DEPENDENCIES = (PositionProvider,)

    scopes: list[str] = field(default_factory=list)
    suites: list[_Suite] = field(default_factory=list)
    annotations: list[_Annotation] = field(default_factory=list)
    comments: list[cst.Comment] = field(default_factory=list)
    want_expressions: bool = False  # some expression site is found by its code
    expressions: list[tuple[cst.BaseExpression, str | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def on_visit(self, node: cst.CSTNode) -> bool:
        if self.want_expressions and isinstance(node, cst.BaseExpression):
            self.expressions.append((node, self._scope()))
        return super().on_visit(node)

    def _scope(self) -> str | None:
        return ".".join(self.scopes) or None

    def _suite(self, body: Sequence[cst.BaseStatement]) -> None:
        suite = _Suite(self._scope(), body)
        self.suites.append(suite)
        for index, statement in enumerate(body):
            leading: Sequence[cst.EmptyLine] = getattr(statement, "leading_lines", ())
            for empty in leading:
                found = _annotation(empty.comment)
                if found is not None:
                    line = self.get_metadata(PositionProvider, statement).start.line
                    self.annotations.append(_Annotation(found, line, False, suite, index,
                                                        statement, empty.comment))
            if isinstance(statement, cst.SimpleStatementLine):
                found = _annotation(statement.trailing_whitespace.comment)
                if found is not None:
                    line = self.get_metadata(PositionProvider, statement).start.line
                    self.annotations.append(_Annotation(
                        found, line, True, suite, index, statement,
                        statement.trailing_whitespace.comment))

    def visit_Module(self, node: cst.Module) -> None:
        self._suite(node.body)

    def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        self._suite(node.body)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.scopes.append(node.name.value)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self.scopes.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.scopes.append(node.name.value)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.scopes.pop()

    def visit_Comment(self, node: cst.Comment) -> None:
        if _annotation(node) is not None:
            self.comments.append(node)


def _annotation(comment: cst.Comment | None) -> str | None:
    if comment is None:
        return None
    found = _ANNOTATION.match(comment.value)
    return found.group(1) if found else None


class _Source:
    """One pass of metadata over a module, and the keys of its statements (memoised)."""

    def __init__(self, module: cst.Module, text: str, path: str | None,
                 expressions: bool = False) -> None:
        self.module, self.text, self.where = module, text, path or "the source"
        wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
        self.collector = _Collector(want_expressions=expressions)
        wrapper.visit(self.collector)
        self.positions = wrapper.resolve(PositionProvider)
        self.line_starts = [0]
        for index, char in enumerate(text):
            if char == "\n":
                self.line_starts.append(index + 1)
        self._keys: dict[int, str] = {}

    def key(self, statement: cst.BaseStatement) -> str:
        found = self._keys.get(id(statement))
        if found is None:
            try:
                found = element_key(self.module.code_for_node(statement))
            except SyntaxError:  # libcst accepts it, this Python does not
                found = f"<unparsed {id(statement)}>"
            self._keys[id(statement)] = found
        return found

    def keys(self, statements: Sequence[cst.BaseStatement]) -> tuple[str, ...]:
        return tuple(self.key(s) for s in statements)

    def matches(self, body: Sequence[cst.BaseStatement], index: int,
                keys: tuple[str, ...]) -> bool:
        """Whether the statements from `index` have `keys` (computed only as needed)."""
        if index + len(keys) > len(body):
            return False
        return all(self.key(body[index + i]) == key for i, key in enumerate(keys))

    def offset(self, line: int, column: int) -> int:
        return self.line_starts[line - 1] + column

    def first_line(self, statement: cst.BaseStatement) -> int:
        lines = [self.positions[statement].start.line]
        for decorator in getattr(statement, "decorators", ()):
            lines.append(self.positions[decorator].start.line)
        return min(lines)

    def line_start(self, line: int) -> int:
        return self.line_starts[line - 1]

    def after_line(self, line: int) -> int:
        return self.line_starts[line] if line < len(self.line_starts) else len(self.text)

    def indent(self, statement: cst.BaseStatement) -> str:
        start = self.line_start(self.first_line(statement))
        text = self.text[start:]
        return text[: len(text) - len(text.lstrip(" \t"))]


def find_structural(module: cst.Module, text: str, grammar: Grammar, path: str | None,
                    bindings: list[Binding]) -> list[Located]:
    """The grammar's structural sites in a source (document order of the grammar).

    Raises `SiteError` for an annotation naming no structural site of the grammar, a site
    found nowhere or in several places, or code at a site that is none of its alternatives.
    """
    specs = [spec for spec in grammar.sites if spec.structural]
    if not specs:  # annotations belong to grammars with structural sites
        return []
    by_code = any(s.structure is not None and s.structure.placement is Placement.EXPRESSION
                  and not s.selectors for s in specs)
    source = _Source(module, text, path, expressions=by_code)
    annotations = _check_annotations(source, grammar)
    found: list[Located] = []
    for spec in specs:
        located = _locate(source, spec, annotations.get(spec.name), bindings)
        if located is None:
            if spec.optional or spec.default is not None:
                continue
            raise SiteError(_missing(spec, grammar, source.where))
        found.append(located)
    return found


def _check_annotations(source: _Source, grammar: Grammar) -> dict[str, _Annotation]:
    by_name: dict[str, _Annotation] = {}
    placed = {id(a.comment) for a in source.collector.annotations}
    where = source.where
    for comment in source.collector.comments:
        line = source.positions[comment].start.line
        name = _annotation(comment)
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
        if annotation.trailing and spec.structure.placement is not Placement.EXPRESSION:
            raise SiteError(f"{at}: {name!r} is a {spec.structure.placement.value} site; put "
                            f"'# deepphoenix: {name}' on its own line before its first "
                            "statement")
        by_name[name] = annotation
    return by_name


def _locate(source: _Source, spec: SiteSpec, annotation: _Annotation | None,
            bindings: list[Binding]) -> Located | None:
    structure = spec.structure
    assert structure is not None
    if structure.placement is Placement.EXPRESSION:
        return _locate_expression(source, spec, annotation, bindings)
    if annotation is not None:
        assert annotation.suite is not None
        return _match_at(source, spec, annotation.suite, annotation.index, "annotation",
                         allow_empty=structure.placement is Placement.STATEMENT)
    suites = [s for s in source.collector.suites if _in_scope(structure.within, s.scope)]
    if structure.placement is Placement.DEFINITION:
        return _locate_definition(source, spec, suites)
    if structure.after is not None:
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
    if any(a.empty for a in structure.alternatives):
        raise SiteError(f"site {spec.name!r} may be absent (an empty alternative) so it needs "
                        f"a place: give it 'after' in the grammar, or put '# deepphoenix: "
                        f"{spec.name}' on its own line in {source.where} where it goes")
    matches: list[tuple[_Suite, int, str, int]] = []
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
        raise SiteError(f"site {spec.name!r} matches {len(matches)} places in {source.where} "
                        f"(lines {lines}); narrow it with 'within' or 'after', or annotate it")
    suite, index, value, size = matches[0]
    how = f"within {structure.within}" if structure.within else "its code"
    return _lines(source, spec, suite, index, size, value, how)


def _longest_first(alternatives: Sequence[Alternative]) -> list[Alternative]:
    return sorted(alternatives, key=lambda a: -len(a.keys))


def _in_scope(within: str | None, scope: str | None) -> bool:
    if within is None:
        return True
    if scope is None:
        return False
    parts = scope.split(".")
    return any(fnmatchcase(".".join(parts[i:j]), within)
               for i in range(len(parts)) for j in range(i + 1, len(parts) + 1))


def _is_anchor(source: _Source, structure: Structure, statement: cst.BaseStatement) -> bool:
    if structure.after_keys:
        return source.key(statement) == structure.after_keys[0]
    return (isinstance(statement, cst.ClassDef | cst.FunctionDef)
            and statement.name.value == structure.after)


def _match_at(source: _Source, spec: SiteSpec, suite: _Suite, index: int, how: str,
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


def _lines(source: _Source, spec: SiteSpec, suite: _Suite, index: int, size: int,
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


def _locate_definition(source: _Source, spec: SiteSpec, suites: list[_Suite]) -> Located | None:
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
                _check_names(source, spec, located)
            return located
    raise SiteError(_not_an_alternative(spec, source.where, source.first_line(suite.body[index]),
                                        source.module.code_for_node(suite.body[index])))


def _locate_expression(source: _Source, spec: SiteSpec, annotation: _Annotation | None,
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


def _expression_by_code(source: _Source, spec: SiteSpec) -> Located | None:
    """The one expression in `within` (default: anywhere) whose code is an alternative's;
    an alternative nested in another's match belongs to the outer one."""
    structure = spec.structure
    assert structure is not None
    wanted = structure.by_keys()
    kinds = {type(cst.parse_expression(f"({a.code})")) for a in structure.alternatives}
    found: list[tuple[int, int, str, int, int]] = []
    for node, scope in source.collector.expressions:
        if type(node) not in kinds or not _in_scope(structure.within, scope):
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
    if structure.placement is Placement.EXPRESSION and spec.selectors:
        rule = " | ".join(str(s) for s in spec.selectors)
    elif structure.placement is Placement.DEFINITION:
        rule = f"define = {structure.define!r}"
    elif structure.after is not None:
        rule = f"after = {structure.after!r}"
    else:
        rule = "the code of one of its alternatives"
    scope = f" within {structure.within!r}" if structure.within else ""
    return (f"site {spec.name!r} of grammar {grammar.name!r} ({structure.placement.value}): "
            f"{rule}{scope} matches nothing in {where} (fix the grammar, annotate the site "
            f"with '# deepphoenix: {spec.name}', or make it optional = true)")


def _check_names(source: _Source, spec: SiteSpec, located: Located) -> None:
    """Every module-level name an alternative of a module-level definition site uses is
    bound by the alternative itself, by the rest of the file, or is a builtin."""
    try:
        tree = ast.parse(source.text)
    except SyntaxError:
        return
    bound: set[str] = set()
    for node in tree.body:
        if located.start <= source.line_start(node.lineno) < located.end:
            continue  # inside the site's span: the alternative in place now
        names = _bound_by(node)
        if names is None:
            return  # a star import: anything may be bound
        bound |= names
    assert spec.structure is not None
    for alternative in spec.structure.alternatives:
        for name in sorted(_needs(alternative.code)):
            if name not in bound and name not in _BUILTINS:
                raise SiteError(
                    f"site {spec.name!r}: alternative {alternative.name!r} uses {name!r}, "
                    f"which neither the alternative nor {source.where} defines or imports "
                    "(add the helper to the alternative's code, or import it in the file)")


def _bound_by(node: ast.stmt) -> set[str] | None:
    names: set[str] = set()
    if isinstance(node, ast.Import | ast.ImportFrom):
        for alias in node.names:
            if alias.name == "*":
                return None
            names.add(alias.asname or alias.name.split(".")[0])
        return names
    if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        return {node.name}
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
            names.add(sub.id)
        elif isinstance(sub, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(sub.name)
        elif isinstance(sub, ast.Import | ast.ImportFrom):
            names.update(a.asname or a.name.split(".")[0] for a in sub.names)
    return names


def _needs(code: str) -> set[str]:
    """The global names `code` reads and does not bind itself."""
    table = symtable.symtable(code + "\n", "<alternative>", "exec")
    local = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()
             or s.is_namespace()}
    needs: set[str] = set()
    stack = [table]
    while stack:
        current = stack.pop()
        for symbol in current.get_symbols():
            if not symbol.is_referenced():
                continue
            is_module = current is table
            if (is_module and symbol.get_name() not in local) or (
                    not is_module and symbol.is_global() and not symbol.is_declared_global()):
                needs.add(symbol.get_name())
        stack.extend(current.get_children())
    return needs - local
