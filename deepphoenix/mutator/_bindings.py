"""Bindings: every place a source binds a name to a value, with the value's exact span.

One CST pass collects assignments to names and attributes, annotated class fields,
keyword and positional arguments, parameter defaults, the items of tuples and lists and the
entries of dicts bound to a name, attribute or keyword, and the callee of a call bound
so (``self.act = nn.GELU()``), each with the dotted path of the classes and functions
around it. Spans come from libcst's byte-span metadata,
checked against the node's own code (libcst miscounts after a form feed, so a span that
does not hold the node's text is searched for nearby).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

import libcst as cst
from libcst.metadata import ByteSpanPositionProvider, MetadataWrapper

from deepphoenix.grammar import Form, Selector, Value
from deepphoenix.mutator._literal import dotted_name, literal_of

__all__ = ["Binding", "collect_bindings", "select_bindings"]

_NEWLINE = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class Binding:
    """One binding of a name to a value expression; `literal` is (tag, value) or None."""

    form: Form
    target: str
    owner: str | None
    literal: tuple[str, Value] | None
    start: int  # character offsets of the value expression in the source text
    end: int
    line: int  # 1-based
    column: int  # 1-based
    scope: str | None = None  # dotted classes and functions around the binding

    @property
    def label(self) -> str:
        """How people would point at it: ``config.d_ff``, ``T5Config(d_ff=…)``, …"""
        owner = self.owner or "…"
        if self.form is Form.ATTRIBUTE:
            return f"{owner}.{self.target}"
        if self.form is Form.KEYWORD:
            return f"{owner}({self.target}=…)"
        if self.form is Form.FIELD:
            return f"{owner}.{self.target}"
        if self.form is Form.PARAMETER:
            return f"{owner}({self.target}=…)"
        if self.form is Form.ARG:
            return f"{owner}(…[{self.target}]…)"
        if self.form in (Form.ITEM, Form.ENTRY):
            return f"{owner}[{self.target}]"
        if self.form is Form.CALL:
            return f"{self.target} = …()" if self.owner is None else f"{owner}.{self.target} = …()"
        return self.target if self.owner is None else f"{self.target} in {self.owner}"

    def selected_by(self, selector: Selector) -> bool:
        return (
            selector.form is self.form
            and selector.target == self.target
            and selector.matches_owner(self.owner)
            and selector.matches_scope(self.scope)
        )


_Found = tuple[Form, str, "str | None", cst.BaseExpression, "str | None"]


class _Collector(cst.CSTVisitor):
    METADATA_DEPENDENCIES = (ByteSpanPositionProvider,)

    def __init__(self) -> None:
        super().__init__()
        self.scopes: list[tuple[str, str]] = []
        self.found: list[_Found] = []

    def _owner_path(self) -> str | None:
        return ".".join(name for _, name in self.scopes) or None

    def _add(self, form: Form, target: str, owner: str | None,
             value: cst.BaseExpression) -> None:
        self.found.append((form, target, owner, value, self._owner_path()))

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.scopes.append(("class", node.name.value))

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self.scopes.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        prefix = self._owner_path()
        owner = f"{prefix}.{node.name.value}" if prefix else node.name.value
        params = node.params
        for param in (*params.posonly_params, *params.params, *params.kwonly_params):
            if param.default is not None:
                self._add(Form.PARAMETER, param.name.value, owner, param.default)
                self._contents(f"{owner}.{param.name.value}", param.default)
        self.scopes.append(("function", node.name.value))

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.scopes.pop()

    def visit_Assign(self, node: cst.Assign) -> None:
        if len(node.targets) == 1:
            self._bind(node.targets[0].target, node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._bind(node.target, node.value)

    def _bind(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        if isinstance(target, cst.Name):
            in_class = bool(self.scopes) and self.scopes[-1][0] == "class"
            if in_class:
                self._add(Form.FIELD, target.value, self._owner_path(), value)
            else:
                self._add(Form.NAME, target.value, self._owner_path(), value)
            self._contents(target.value, value)
            if isinstance(value, cst.Call):
                self._add(Form.CALL, target.value, None, value.func)
        elif isinstance(target, cst.Attribute):
            obj = dotted_name(target.value)
            self._add(Form.ATTRIBUTE, target.attr.value, obj, value)
            self._contents(dotted_name(target), value)
            if isinstance(value, cst.Call):
                self._add(Form.CALL, target.attr.value, obj, value.func)

    def _contents(self, owner: str | None, value: cst.BaseExpression) -> None:
        """Items of a tuple or list and string-keyed entries of a dict bound to `owner`."""
        if owner is None:
            return
        if isinstance(value, cst.Tuple | cst.List):
            for position, element in enumerate(value.elements):
                if isinstance(element, cst.Element):
                    self._add(Form.ITEM, str(position), owner, element.value)
        elif isinstance(value, cst.Dict):
            for entry in value.elements:
                if isinstance(entry, cst.DictElement) and isinstance(entry.key, cst.SimpleString):
                    key = literal_of(entry.key)
                    if key is not None and isinstance(key[1], str):
                        self._add(Form.ENTRY, key[1], owner, entry.value)

    def visit_Call(self, node: cst.Call) -> None:
        owner = dotted_name(node.func)
        for position, arg in enumerate(node.args):
            if arg.star:
                continue
            if arg.keyword is None:
                self._add(Form.ARG, str(position), owner, arg.value)
                continue
            self._add(Form.KEYWORD, arg.keyword.value, owner, arg.value)
            if owner is not None:
                self._contents(f"{owner}.{arg.keyword.value}", arg.value)
            if isinstance(arg.value, cst.Call):
                self._add(Form.CALL, arg.keyword.value, owner, arg.value.func)


class _Offsets:
    """Byte offsets to character offsets, and character offsets to line and column."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.ascii = text.isascii()
        self._chars: list[int] = []
        if not self.ascii:
            for index, char in enumerate(text):
                self._chars.extend([index] * len(char.encode("utf-8")))
            self._chars.append(len(text))
        self.line_starts = [0] + [mt.end() for mt in _NEWLINE.finditer(text)]

    def char(self, byte_offset: int) -> int:
        return byte_offset if self.ascii else self._chars[byte_offset]

    def line_column(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.line_starts, offset)
        return line, offset - self.line_starts[line - 1] + 1


def select_bindings(bindings: list[Binding], selector: Selector) -> list[Binding]:
    """The bindings `selector` selects, in document order; with ``#k``, only the k-th."""
    selected = [b for b in bindings if b.selected_by(selector)]
    if selector.index is not None:
        selected = selected[selector.index - 1 : selector.index]
    return selected


def collect_bindings(module: cst.Module, text: str) -> list[Binding]:
    """Every binding in document order. `text` must be the code `module` was parsed from."""
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    collector = _Collector()
    wrapper.visit(collector)
    spans = wrapper.resolve(ByteSpanPositionProvider)
    offsets = _Offsets(text)
    out: list[Binding] = []
    for form, target, owner, node, scope in collector.found:
        span = spans[node]
        start = offsets.char(span.start)
        end = offsets.char(span.start + span.length)
        literal = literal_of(node)
        if literal is not None:
            expected = module.code_for_node(
                node.with_changes(lpar=(), rpar=()) if node.lpar else node
            )
            if text[start:end] != expected:
                start, end = _search_near(text, expected, start)
        line, column = offsets.line_column(start)
        out.append(Binding(form, target, owner, literal, start, end, line, column, scope))
    out.sort(key=lambda b: b.start)
    return out


def _search_near(text: str, expected: str, guess: int) -> tuple[int, int]:
    """Where `expected` really is: libcst's offset falls short by one per form feed before
    the node, so look forward from the guess first, then anywhere."""
    found = text.find(expected, guess)
    if found < 0:
        found = text.find(expected)
    if found < 0:  # cannot happen for code libcst produced from this text
        raise AssertionError(f"literal {expected!r} not found in source")
    return found, found + len(expected)
