"""One sweep over every selector form's (before, after) examples."""

from __future__ import annotations

import pytest

from deepphoenix.errors import SiteError
from deepphoenix.grammar import Form, parse_grammar
from deepphoenix.mutator import diff_text, parse_program
from deepphoenix.mutator._examples import SELECTOR_EXAMPLES, SelectorExample


def test_every_form_has_an_example() -> None:
    assert {e.form for e in SELECTOR_EXAMPLES} == set(Form)


@pytest.mark.parametrize("example", SELECTOR_EXAMPLES, ids=lambda e: e.selector)
def test_selector_example(example: SelectorExample) -> None:
    grammar = example.grammar()
    program = parse_program(example.before, grammar)
    result = program.apply({"x": example.value})
    assert result.variant is not None, result.reason
    assert result.variant.source == example.after
    again = parse_program(result.variant.source, grammar)  # the site is found again
    assert again.values["x"] == example.value
    assert diff_text(program, example.after).edits == result.variant.changes


@pytest.mark.parametrize(("select", "source", "message"), [
    ("field:GPTConfig.n_head", "n_head = 12\n",
     r"field:GPTConfig.n_head matches no literal .*near: n_head at line 1 \(a name\)"),
    ("keyword:Linear.bias", "x = Linear(4, 4, bias=flag or True)\n",
     r"near: Linear\(bias=…\) at line 1 \(a keyword, not a literal\)"),
    ("name:n_heads", "n_head = 12\n", r"near: n_head at line 1"),
    ("name:width", "depth = 3\n", r"nothing of that name is bound there"),
])
def test_a_selector_that_matches_nothing_says_what_is_near(select: str, source: str,
                                                           message: str) -> None:
    grammar = parse_grammar(f"[sites.x]\nselect = '{select}'\nkind = 'int'\n")
    with pytest.raises(SiteError, match=message):
        parse_program(source, grammar)
