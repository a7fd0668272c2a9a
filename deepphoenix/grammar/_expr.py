"""A small, safe expression language for invariants and derived sites.

Expressions are parsed with the standard `ast` module in ``eval`` mode and compiled into a
tree of closures over an allow-list of node types. Nothing is ever passed to `eval`; names
resolve only to site values. The subset: int/float/bool/str constants, site names,
``+ - * / // %``, unary ``- + not``, comparisons (chained), membership in a written list
(``n_head in [4, 8, 12]``, ``act not in ("relu", "gelu")``), ``and``/``or``, conditionals
(``a if cond else b``), and calls of ``min``, ``max`` and ``abs``.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from deepphoenix.errors import ExpressionError, did_you_mean

__all__ = ["EvaluationError", "Expression", "compile_expression"]

Value = int | float | bool | str
Env = Mapping[str, Value]
_Fn = Callable[[Env], Value]


class EvaluationError(ArithmeticError):
    """An expression failed on particular values (division by zero, a type mismatch)."""


_BINARY: dict[type[ast.operator], Callable[[Value, Value], Value]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Value, Value], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_FUNCTIONS: dict[str, Callable[..., Value]] = {"min": min, "max": max, "abs": abs}
_MEMBERSHIP: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.In: lambda item, items: item in items,
    ast.NotIn: lambda item, items: item not in items,
}


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled expression: its text, the site names it reads, and an evaluator."""

    text: str
    names: frozenset[str]
    _fn: _Fn = field(repr=False, compare=False)

    def evaluate(self, env: Env) -> Value:
        """Evaluate on `env`; raise `EvaluationError` when the values make it fail."""
        try:
            return self._fn(env)
        except (ArithmeticError, TypeError, ValueError) as exc:
            if isinstance(exc, EvaluationError):
                raise
            raise EvaluationError(f"{self.text}: {exc}") from None

    def __reduce__(self) -> tuple[object, ...]:
        # Closures do not pickle; the text is enough to rebuild.
        return (_recompile, (self.text, tuple(sorted(self.names))))


def _recompile(text: str, names: tuple[str, ...]) -> Expression:
    return compile_expression(text, names)


_MAX_LENGTH = 2000  # characters; invariants are one line
_MAX_DEPTH = 100  # levels of nesting
_SHOWN = 60  # characters of an expression quoted in an error


def _shown(text: str) -> str:
    """An expression as quoted in a one-line error: whole when short, else its start."""
    return repr(text) if len(text) <= _SHOWN else repr(text[:_SHOWN]) + "..."


def _depth(root: ast.AST) -> int:
    deepest = 0
    stack = [(root, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in ast.iter_child_nodes(node))
    return deepest


def compile_expression(text: str, known: Iterable[str]) -> Expression:
    """Parse `text` into an `Expression` whose names must all be in `known`.

    Raises `ExpressionError` naming the offending construct or name.
    """
    known_set = frozenset(known)
    if len(text) > _MAX_LENGTH:
        raise ExpressionError(f"expression {_shown(text)} is {len(text)} characters long; "
                              f"the limit is {_MAX_LENGTH}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"expression {_shown(text)} is not valid: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise ExpressionError(f"expression {_shown(text)} is nested too deeply") from None
    if _depth(tree.body) > _MAX_DEPTH:  # evaluation recurses once per level
        raise ExpressionError(f"expression {_shown(text)} is nested more than "
                              f"{_MAX_DEPTH} levels deep")
    names: set[str] = set()
    fn = _compile(tree.body, text, known_set, names)
    return Expression(text=text.strip(), names=frozenset(names), _fn=fn)



def _compile(node: ast.expr, text: str, known: frozenset[str], names: set[str]) -> _Fn:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool | int | float | str):
            value: Value = node.value
            return lambda env: value
        raise ExpressionError(f"expression {_shown(text)}: constant {node.value!r} is not allowed")
    if isinstance(node, ast.Name):
        name = node.id
        if name not in known:
            raise ExpressionError(
                f"expression {_shown(text)} names unknown site {name!r}.{did_you_mean(name, known)}"
            )
        names.add(name)
        return lambda env: env[name]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        op = _BINARY[type(node.op)]
        left = _compile(node.left, text, known, names)
        right = _compile(node.right, text, known, names)
        return lambda env: op(left(env), right(env))
    if isinstance(node, ast.UnaryOp):
        operand = _compile(node.operand, text, known, names)
        if isinstance(node.op, ast.USub):
            return lambda env: -operand(env)  # type: ignore[operator]
        if isinstance(node.op, ast.UAdd):
            return lambda env: +operand(env)  # type: ignore[operator]
        if isinstance(node.op, ast.Not):
            return lambda env: not operand(env)
    if isinstance(node, ast.BoolOp):
        parts = [_compile(v, text, known, names) for v in node.values]
        if isinstance(node.op, ast.And):
            return lambda env: all(p(env) for p in parts)
        return lambda env: any(p(env) for p in parts)
    if isinstance(node, ast.Compare) and all(type(o) in _COMPARE or type(o) in _MEMBERSHIP
                                             for o in node.ops):
        first = _compile(node.left, text, known, names)
        ops: list[Callable[[Any, Any], bool]] = []
        rest: list[Callable[[Env], Any]] = []
        for op_node, comparator in zip(node.ops, node.comparators, strict=True):
            if type(op_node) in _MEMBERSHIP:
                ops.append(_MEMBERSHIP[type(op_node)])
                rest.append(_collection(comparator, text, known, names))
            else:
                ops.append(_COMPARE[type(op_node)])
                rest.append(_compile(comparator, text, known, names))

        def compare(env: Env) -> bool:
            left: Any = first(env)
            for op, right_fn in zip(ops, rest, strict=True):
                right = right_fn(env)
                if not op(left, right):
                    return False
                left = right
            return True

        return compare
    if isinstance(node, ast.IfExp):  # a rule that depends on a choice: SwiGLU's width
        test = _compile(node.test, text, known, names)
        body = _compile(node.body, text, known, names)
        orelse = _compile(node.orelse, text, known, names)
        return lambda env: body(env) if test(env) else orelse(env)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
        and node.args
    ):
        fn = _FUNCTIONS[node.func.id]
        args = [_compile(a, text, known, names) for a in node.args]
        if node.func.id == "abs" and len(args) != 1:
            raise ExpressionError(f"expression {_shown(text)}: abs() takes one argument")
        if node.func.id != "abs" and len(args) < 2:
            raise ExpressionError(f"expression {_shown(text)}: {node.func.id}() needs two or more")
        return lambda env: fn(*(a(env) for a in args))
    shown = ast.unparse(node)
    raise ExpressionError(
        f"expression {_shown(text)}: {shown!r} is not allowed (use arithmetic, comparisons, "
        "'in [...]', and/or/not, 'a if c else b', min, max, abs)"
    )


def _collection(node: ast.expr, text: str, known: frozenset[str],
                names: set[str]) -> Callable[[Env], tuple[Value, ...]]:
    """The right side of ``in``: a list, tuple or set written in the expression."""
    if not isinstance(node, ast.List | ast.Tuple | ast.Set):
        raise ExpressionError(
            f"expression {_shown(text)}: 'in' needs a written list such as [4, 8], got "
            f"{ast.unparse(node)!r}"
        )
    items = [_compile(item, text, known, names) for item in node.elts]
    return lambda env: tuple(item(env) for item in items)
