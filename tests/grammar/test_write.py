"""`format_grammar` is the inverse of `parse_grammar`."""

from __future__ import annotations

from hypothesis import given

from deepphoenix.grammar import Grammar, format_grammar, load_grammar, parse_grammar
from deepphoenix.testing import grammars


@given(grammars())
def test_random_grammars_round_trip(grammar: Grammar) -> None:
    again = parse_grammar(format_grammar(grammar), default_name=grammar.name)
    assert again.to_dict() | {"origin": ""} == grammar.to_dict() | {"origin": ""}


def test_builtin_grammars_round_trip() -> None:
    for name in ("t5", "nanogpt", "llama", "resnet"):
        grammar = load_grammar(name)
        again = parse_grammar(format_grammar(grammar))
        assert again.sites == grammar.sites
        assert [i.text for i in again.invariants] == [i.text for i in grammar.invariants]
