"""One pass over a parsed module for its structural sites: the statement suites (with the
class/function path around each), the ``# deepphoenix: NAME`` annotations, and, when asked,
every expression; plus statement keys, memoised, and line arithmetic."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from deepphoenix.grammar import element_key

__all__ = ["Annotation", "Collector", "Source", "Suite", "annotation_name", "in_scope"]

ANNOTATION = re.compile(r"^#\s*deepphoenix:\s*(\S+)\s*$")


@dataclass
class Suite:
    """A body of statements (the module's, a class's, a function's, a block's) and the
    dotted class/function path around it (None: module level)."""

    scope: str | None
    body: Sequence[cst.BaseStatement]


@dataclass
class Annotation:
    """A ``# deepphoenix: NAME`` comment: on its own line before `statement` (the
    `index`-th of `suite`), or `trailing` at the end of that statement's line."""

    name: str
    line: int
    trailing: bool
    suite: Suite | None = None
    index: int = 0
    statement: cst.BaseStatement | None = None
    comment: cst.Comment | None = None


@dataclass
class Collector(cst.CSTVisitor):
    METADATA_DEPENDENCIES = (PositionProvider,)

    scopes: list[str] = field(default_factory=list)
    suites: list[Suite] = field(default_factory=list)
    annotations: list[Annotation] = field(default_factory=list)
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
        suite = Suite(self._scope(), body)
        self.suites.append(suite)
        for index, statement in enumerate(body):
            leading: Sequence[cst.EmptyLine] = getattr(statement, "leading_lines", ())
            for empty in leading:
                found = annotation_name(empty.comment)
                if found is not None:
                    line = self.get_metadata(PositionProvider, statement).start.line
                    self.annotations.append(Annotation(found, line, False, suite, index,
                                                        statement, empty.comment))
            if isinstance(statement, cst.SimpleStatementLine):
                found = annotation_name(statement.trailing_whitespace.comment)
                if found is not None:
                    line = self.get_metadata(PositionProvider, statement).start.line
                    self.annotations.append(Annotation(
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
        if annotation_name(node) is not None:
            self.comments.append(node)


def annotation_name(comment: cst.Comment | None) -> str | None:
    if comment is None:
        return None
    found = ANNOTATION.match(comment.value)
    return found.group(1) if found else None


class Source:
    """A parsed module as a `Locator` reads it (`text`, `module`, `where` for messages,
    `collector.suites` and `.annotations`, `positions`): one pass of metadata over the
    module, the keys of its statements (memoised) and line arithmetic."""

    def __init__(self, module: cst.Module, text: str, path: str | None,
                 expressions: bool = False) -> None:
        self.module, self.text, self.where = module, text, path or "the source"
        wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
        self.collector = Collector(want_expressions=expressions)
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


def in_scope(within: str | None, scope: str | None) -> bool:
    if within is None:
        return True
    if scope is None:
        return False
    parts = scope.split(".")
    return any(fnmatchcase(".".join(parts[i:j]), within)
               for i in range(len(parts)) for j in range(i + 1, len(parts) + 1))
