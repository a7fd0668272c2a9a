from __future__ import annotations

import pickle

import pytest

from deepphoenix.errors import ExpressionError
from deepphoenix.grammar import EvaluationError, compile_expression

NAMES = ["a", "b", "d_model", "num_heads"]


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("d_model // num_heads", {"d_model": 512, "num_heads": 7}, 73),
        ("a + b * 2 - 1", {"a": 1, "b": 3}, 6),
        ("a / b", {"a": 1, "b": 4}, 0.25),
        ("a % b", {"a": 7, "b": 4}, 3),
        ("-a", {"a": 2}, -2),
        ("+a", {"a": 2}, 2),
        ("not a", {"a": False}, True),
        ("1 <= a < b", {"a": 2, "b": 3}, True),
        ("1 <= a < b", {"a": 3, "b": 3}, False),
        ("a == 1 or b == 1", {"a": 0, "b": 1}, True),
        ("a == 1 and b == 1", {"a": 0, "b": 1}, False),
        ("min(a, b, 3)", {"a": 5, "b": 4}, 3),
        ("max(a, b)", {"a": 5, "b": 4}, 5),
        ("abs(a - b)", {"a": 1, "b": 4}, 3),
        ("a != 'relu'", {"a": "gelu"}, True),
        ("8 * b // 3 if a == 'swiglu' else 4 * b", {"a": "swiglu", "b": 6}, 16),
        ("8 * b // 3 if a == 'swiglu' else 4 * b", {"a": "gelu", "b": 6}, 24),
    ],
)
def test_evaluates_the_safe_subset(text: str, env: dict, expected: object) -> None:
    expr = compile_expression(text, NAMES)
    assert expr.evaluate(env) == expected


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('true')",
        "a.__class__",
        "open('x')",
        "lambda: 1",
        "[a for a in b]",
        "a ** b",
        "a[0]",
        "{a: 1}",
        "min(a, key=b)",
        "abs(a, b)",
        "max(a)",
    ],
)
def test_rejects_everything_else(text: str) -> None:
    with pytest.raises(ExpressionError, match=r"not allowed|takes one|needs two"):
        compile_expression(text, NAMES)


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(ExpressionError, match=r"unknown site 'num_head'.*Did you mean 'num_heads'"):
        compile_expression("d_model // num_head", NAMES)


def test_syntax_error_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError, match="not valid"):
        compile_expression("a +", NAMES)


def test_division_by_zero_is_an_evaluation_error() -> None:
    expr = compile_expression("d_model // num_heads", NAMES)
    with pytest.raises(EvaluationError, match="division"):
        expr.evaluate({"d_model": 512, "num_heads": 0})


def test_records_the_names_it_reads_and_pickles() -> None:
    expr = compile_expression("d_model // num_heads", NAMES)
    assert expr.names == {"d_model", "num_heads"}
    again = pickle.loads(pickle.dumps(expr))
    assert again.text == expr.text
    assert again.evaluate({"d_model": 64, "num_heads": 4}) == 16


@pytest.mark.parametrize(("text", "message"), [
    ("-" * 1200 + "a", "nested"),  # beyond the parser's own limit
    ("a" + " + 1" * 300, "nested more than 100"),  # parses, but would recurse when evaluated
    ("not " * 150 + "a", "nested more than 100"),
    ("a + " * 600 + "a", "characters long"),
])
def test_hostile_expressions_are_expression_errors(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        compile_expression(text, NAMES)


def test_deep_but_allowed_expressions_evaluate() -> None:
    assert compile_expression("-" * 60 + "a", NAMES).evaluate({"a": 2}) == 2


def test_errors_about_long_expressions_stay_one_short_line() -> None:
    from deepphoenix.errors import ExpressionError
    from deepphoenix.grammar import compile_expression

    for text in ("(" * 900 + "a" + ")" * 900, "a + " * 400 + "(", "a ? b" + " " * 500):
        with pytest.raises(ExpressionError) as caught:
            compile_expression(text, {"a", "b"})
        message = str(caught.value)
        assert "\n" not in message and len(message) < 200, message
