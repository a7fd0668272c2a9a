"""Structural sites in grammar TOML: alternatives are parsed and checked when the grammar
loads, and every mistake is one GrammarError naming the file line, the site and why."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from deepphoenix.errors import GrammarError
from deepphoenix.grammar import (
    Kind,
    Placement,
    compile_expression,
    format_grammar,
    parse_grammar,
    read_grammar_file,
)

TOY = Path(__file__).parent.parent / "fixtures" / "structural" / "toy.toml"


def test_a_structural_site_is_a_categorical_site_over_its_alternatives() -> None:
    grammar = read_grammar_file(TOY)
    mlp = grammar.site("mlp")
    assert mlp.kind is Kind.CATEGORICAL and mlp.structural and mlp.proposable
    assert mlp.domain.choices == ("plain", "swiglu")
    assert mlp.structure is not None and mlp.structure.placement == Placement.DEFINITION
    assert mlp.structure.alternative("swiglu").code.startswith("def swish(x):")
    qk = grammar.site("qk_norm").structure
    assert qk is not None and qk.alternative("off").empty and not qk.alternative("on").empty
    assert not grammar.site("width").structural


def test_structural_grammars_round_trip_through_toml_and_pickle() -> None:
    grammar = read_grammar_file(TOY)
    again = parse_grammar(format_grammar(grammar), origin=grammar.origin)
    assert again == grammar
    assert pickle.loads(pickle.dumps(grammar)) == grammar


def test_invariants_and_derivations_name_a_choice() -> None:
    expr = compile_expression("8 * w // 3 if mlp == 'swiglu' else 4 * w", ["mlp", "w"])
    assert expr.evaluate({"mlp": "swiglu", "w": 6}) == 16
    assert expr.evaluate({"mlp": "plain", "w": 6}) == 24
    grammar = read_grammar_file(TOY)
    assert not grammar.check({"mlp": "swiglu", "width": 31}).ok
    assert grammar.check({"mlp": "plain", "width": 31}).ok


def _site(body: str) -> str:
    return 'name = "g"\n\n[sites.s]\n' + body


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ('kind = "expression"\n[sites.s.alternatives]\na = "f(x"\nb = "g(x)"\n', 6,
         r"'sites\.s\.alternatives\.a'.*alternative 'a' is not one Python expression"),
        ('kind = "expression"\n[sites.s.alternatives]\na = "x = 1"\nb = "g(x)"\n', 6,
         r"alternative 'a' is not one Python expression"),
        ('kind = "statement"\n[sites.s.alternatives]\na = "x = 1"\nb = "def f(:"\n', 7,
         r"alternative 'b' is not Python statements"),
        ('kind = "definition"\ndefine = "MLP"\n[sites.s.alternatives]\n'
         'a = "class MLP: pass"\nb = "class Other: pass"\n', 8,
         r"alternative 'b' does not define 'MLP'"),
        ('kind = "definition"\n[sites.s.alternatives]\na = "class A: pass"\n'
         'b = "class B: pass"\n', 3, r"'sites\.s\.define'.*names the class or def"),
        ('kind = "statement"\n[sites.s.alternatives]\na = "x = 1"\nb = "x  =  1  # same"\n', 7,
         r"alternatives 'a' and 'b' are the same code"),
        ('kind = "statement"\n[sites.s.alternatives]\nonly = "x = 1"\n', 3,
         r"two or more alternatives"),
        ('kind = "expression"\n[sites.s.alternatives]\na = ""\nb = "g(x)"\n', 6,
         r"alternative 'a' is empty"),
        ('kind = "statement"\nafter = "def f(:"\n[sites.s.alternatives]\na = ""\nb = "y"\n', 5,
         r"'sites\.s\.after'.*neither a definition name nor a statement"),
        ('kind = "statement"\nselect = "name:x"\n[sites.s.alternatives]\na = ""\nb = "y"\n', 5,
         r"found by 'within', 'after' or 'define'"),
        ('kind = "expression"\nmin = 1\n[sites.s.alternatives]\na = "f()"\nb = "g()"\n', 5,
         r"'min' does not apply"),
        ('kind = "expression"\n', 3, r"needs an \[sites\.s\.alternatives\] table"),
        ('kind = "expression"\n[sites.s.alternatives]\n"no good" = "f()"\nb = "g()"\n', 5,
         r"must be a Python identifier"),
        ('kind = "int"\nmin = 1\nmax = 2\nwithin = "A"\n', 7,
         r"'within' applies to structural sites"),
        ('kind = "expression"\ndefault = "c"\n[sites.s.alternatives]\na = "f()"\nb = "g()"\n', 5,
         r"default 'c' is not an alternative"),
    ],
)
def test_bad_structural_sites_are_one_line_grammar_errors(body: str, line: int,
                                                          message: str) -> None:
    with pytest.raises(GrammarError, match=message) as caught:
        parse_grammar(_site(body), origin="g.toml")
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith(f"g.toml:{line}: ")
