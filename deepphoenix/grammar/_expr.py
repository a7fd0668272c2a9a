"""A small, safe expression language for invariants and derived sites.

Expressions are parsed with the standard `ast` module in ``eval`` mode and compiled into a
tree of closures over an allow-list of node types. Nothing is ever passed to `eval`; names
resolve only to site values. The subset: int/float/bool/str constants, site names,
``+ - * / // %``, unary ``- + not``, comparisons (chained), ``and``/``or``, and calls of
``min``, ``max`` and ``abs``.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

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
        raise ExpressionError(f"expression {text[:40]!r}... is {len(text)} characters long; "
                              f"the limit is {_MAX_LENGTH}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"expression {text!r} is not valid: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise ExpressionError(f"expression {text[:40]!r}... is nested too deeply") from None
    if _depth(tree.body) > _MAX_DEPTH:  # evaluation recurses once per level
        raise ExpressionError(f"expression {text[:40]!r}... is nested more than "
                              f"{_MAX_DEPTH} levels deep")
    names: set[str] = set()
    fn = _compile(tree.body, text, known_set, names)
    return Expression(text=text.strip(), names=frozenset(names), _fn=fn)



def _compile(node: ast.expr, text: str, known: frozenset[str], names: set[str]) -> _Fn:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool | int | float | str):
            value: Value = node.value
            return lambda env: value
        raise ExpressionError(f"expression {text!r}: constant {node.value!r} is not allowed")
    if isinstance(node, ast.Name):
        name = node.id
        if name not in known:
            raise ExpressionError(
                f"expression {text!r} names unknown site {name!r}.{did_you_mean(name, known)}"
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
    if isinstance(node, ast.Compare) and all(type(o) in _COMPARE for o in node.ops):
        first = _compile(node.left, text, known, names)
        ops = [_COMPARE[type(o)] for o in node.ops]
        rest = [_compile(c, text, known, names) for c in node.comparators]

        def compare(env: Env) -> bool:
            left = first(env)
            for op, right_fn in zip(ops, rest, strict=True):
                right = right_fn(env)
                if not op(left, right):
                    return False
                left = right
            return True

        return compare
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
            raise ExpressionError(f"expression {text!r}: abs() takes one argument")
        if node.func.id != "abs" and len(args) < 2:
            raise ExpressionError(f"expression {text!r}: {node.func.id}() needs two or more")
        return lambda env: fn(*(a(env) for a in args))
    shown = ast.unparse(node)
    raise ExpressionError(
        f"expression {text!r}: {shown!r} is not allowed (use arithmetic, comparisons, "
        "and/or/not, min, max, abs)"
    )
