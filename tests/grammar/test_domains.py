"""Numeric domains: listed values, int grids (multiple_of), log-int, numeric choices, and
`in` in expressions."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deepphoenix.errors import ExpressionError, GrammarError
from deepphoenix.grammar import (
    Kind,
    OperatorKind,
    compile_expression,
    draw_value,
    move_value,
    neighbours,
    parse_grammar,
)
from deepphoenix.mutator import parse_program
from deepphoenix.outcome import Outcome

GRAMMAR = parse_grammar("""
[sites.n_head]
select = "name:n_head"
kind = "int"
values = [4, 8, 12, 16]

[sites.n_embd]
select = "name:n_embd"
kind = "int"
min = 64
max = 2048
multiple_of = 64

[sites.batch]
select = "name:batch"
kind = "log-int"
min = 1
max = 512

[sites.lr]
select = "name:lr"
kind = "float"
values = [1e-4, 3e-4, 1e-3]

[sites.width]
select = "name:width"
kind = "categorical"
choices = [768, "1024"]
""")

SOURCE = "n_head = 8\nn_embd = 512\nbatch = 32\nlr = 3e-4\nwidth = 768\n"


def test_keys_parse_into_domains() -> None:
    head, embd, batch, lr, width = GRAMMAR.sites
    assert head.domain.values == (4, 8, 12, 16) and head.operator.kind is OperatorKind.STEP
    assert embd.domain.multiple_of == 64
    assert batch.kind is Kind.LOG_INT and batch.operator.kind is OperatorKind.SCALE
    assert lr.domain.values == (1e-4, 3e-4, 1e-3)
    assert width.domain.choices == ("768", "1024")
    assert head.domain.describe(head.kind) == "one of 4, 8, 12, 16"
    assert embd.domain.describe(embd.kind) == "64..2048, multiple of 64"


@given(st.integers(0, 2**32))
def test_every_draw_and_move_stays_in_its_domain(seed: int) -> None:
    rng = random.Random(seed)
    for spec in GRAMMAR.sites:
        start = draw_value(spec, rng)
        assert spec.domain.contains(spec.kind, start), (spec.name, start)
        new = move_value(spec, start, rng)
        assert new is None or (new != start and spec.domain.contains(spec.kind, new))


def test_float_draws_stay_inside_bounds_written_with_many_digits() -> None:
    # Draws are tidied to six significant digits; between bounds written with seven (a
    # domain resolved around a file's value can be) that rounding left every draw outside.
    grammar = parse_grammar("[sites.x]\nkind = 'float'\nmin = 0.0001234567\n"
                            "max = 0.0001234568\n[sites.y]\nkind = 'log-float'\n"
                            "min = 0.0001234567\nmax = 0.0001234568\n")
    rng = random.Random(0)
    for spec in grammar.sites:
        assert all(spec.domain.contains(spec.kind, draw_value(spec, rng)) for _ in range(200))


def test_moves_follow_the_list_and_the_grid() -> None:
    head, embd = GRAMMAR.site("n_head"), GRAMMAR.site("n_embd")
    assert neighbours(head, 8) == (4, 12)
    assert neighbours(head, 16) == (12,)
    rng = random.Random(0)
    assert {move_value(embd, 512, rng) for _ in range(500)} <= set(range(64, 2049, 64))
    assert all(v % 64 == 0 for v in neighbours(embd, 512) or ())


def test_log_int_draws_spread_over_magnitudes() -> None:
    batch = GRAMMAR.site("batch")
    rng = random.Random(0)
    draws = [draw_value(batch, rng) for _ in range(2000)]
    assert all(isinstance(v, int) and 1 <= v <= 512 for v in draws)
    small = sum(1 for v in draws if isinstance(v, int) and v <= 22)
    assert 0.35 < small / len(draws) < 0.65  # log-uniform: half the draws below sqrt(512)


def test_numeric_choices_read_and_write_bare_numbers() -> None:
    program = parse_program(SOURCE, GRAMMAR)
    assert program.values["width"] == "768"
    result = program.apply({"width": "1024"})
    assert result.ok and result.variant is not None
    assert "width = 1024\n" in result.variant.source
    again = parse_program(result.variant.source, GRAMMAR)
    assert again.values["width"] == "1024"


def test_values_outside_the_domain_are_rejected() -> None:
    program = parse_program(SOURCE, GRAMMAR)
    assert program.apply({"n_head": 6}).outcome is Outcome.OUT_OF_DOMAIN
    assert program.apply({"n_embd": 100}).outcome is Outcome.OUT_OF_DOMAIN
    assert program.apply({"lr": 2e-4}).outcome is Outcome.OUT_OF_DOMAIN
    assert program.apply({"n_embd": 640}).ok


def test_in_membership_in_expressions() -> None:
    expr = compile_expression("n_head in [4, 8] and act not in ('relu',)", ["n_head", "act"])
    assert expr.evaluate({"n_head": 8, "act": "gelu"}) is True
    assert expr.evaluate({"n_head": 12, "act": "gelu"}) is False
    assert expr.evaluate({"n_head": 4, "act": "relu"}) is False
    with pytest.raises(ExpressionError, match="written list"):
        compile_expression("n_head in n_embd", ["n_head", "n_embd"])


@pytest.mark.parametrize(("body", "key", "message"), [
    ("kind = 'int'\nvalues = [1, 2.5]", "values", "lists ints"),
    ("kind = 'int'\nvalues = []", "values", "non-empty list"),
    ("kind = 'int'\nvalues = [2, 2]", "values", "repeat"),
    ("kind = 'categorical'\nvalues = [1, 2]", "values", "choices"),
    ("kind = 'float'\nmultiple_of = 2\nmin = 0\nmax = 1", "multiple_of", "int site"),
    ("kind = 'int'\nmultiple_of = 100\nmin = 1\nmax = 50", "multiple_of", "no multiple"),
    ("kind = 'log-int'\nmin = 0\nmax = 8", "min", "min > 0"),
    ("kind = 'int'\nchoices = [1, 2]", "choices", "list 'values'"),
])
def test_bad_numeric_domains_name_key_and_line(body: str, key: str, message: str) -> None:
    text = f"[sites.x]\nselect = 'name:x'\n{body}\n"
    with pytest.raises(GrammarError, match=rf"<toml>:\d+: key 'sites\.x\.{key}': .*{message}"):
        parse_grammar(text)
