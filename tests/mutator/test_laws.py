"""The mutator laws of STYLE.md, as properties over the paper grammar and random grammars."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import assume, given
from hypothesis import strategies as st

from deepphoenix.grammar import Grammar, load_grammar, parse_grammar
from deepphoenix.mutator import (
    Edit,
    canonical_hash,
    diff_programs,
    diff_text,
    parse_module,
    parse_program,
)
from deepphoenix.outcome import Outcome
from deepphoenix.proposers import Refiner
from deepphoenix.seeds import seed_source
from deepphoenix.testing import edits, grammars, sources, template_source

T5 = load_grammar("t5")
NANOGPT = load_grammar("nanogpt")
NANOGPT_CONFIG = (Path(__file__).parent.parent / "grammar" / "files" / "nanogpt_config.py"
                  ).read_text(encoding="utf-8")
# A hidden site (read from the source), a derived site that uses it, a conditional site,
# listed values, a grid, a log-int and a categorical call target.
COUPLED = parse_grammar("""
invariants = ["n_embd % n_head == 0", "n_head in [1, 2, 3, 4, 6, 8, 12, 16]"]

[sites.n_head]
select = "name:n_head"
kind = "int"
min = 1
max = 16
moves_with = ["depth"]

[sites.head_size]
hidden = true
read = "n_embd // n_head"
kind = "int"
values = [16, 32, 64]

[sites.n_embd]
select = "name:n_embd"
derive = "n_head * head_size"

[sites.depth]
select = "item:shape[0]"
kind = "log-int"
min = 1
max = 64

[sites.use_drop]
select = "keyword:Net.use_drop"
kind = "bool"

[sites.p]
select = "entry:extra[p]"
kind = "float"
values = [0.1, 0.2]
when = "use_drop"

[sites.act]
select = "call:self.act"
kind = "categorical"
choices = ["nn.GELU", "nn.ReLU", "nn.SiLU"]

[sites.width]
select = "arg:Linear[1]"
kind = "int"
min = 64
max = 1024
multiple_of = 64
""")
COUPLED_SOURCE = (
    "n_head = 4\nn_embd = 128\nshape = (2, 3)\nnet = Net(use_drop=True)\n"
    "extra = {'p': 0.1}\nself.act = nn.GELU()\nlin = Linear(n_embd, 256)\n"
)


@st.composite
def grammar_and_source(draw: st.DrawFn) -> tuple[Grammar, str]:
    grammar = draw(grammars())
    return grammar, draw(sources(grammar))


families = st.one_of(
    st.tuples(st.just(T5), sources(T5, seed_source("paper"))),
    st.tuples(st.just(T5), sources(T5, seed_source("tiny"))),
    st.tuples(st.just(NANOGPT), sources(NANOGPT, NANOGPT_CONFIG)),
    st.tuples(st.just(COUPLED), sources(COUPLED, COUPLED_SOURCE)),
    grammar_and_source(),
)


@given(families)
def test_parse_round_trips(family: tuple[Grammar, str]) -> None:
    grammar, text = family
    assert parse_program(text, grammar).module.code == text


@given(families)
def test_no_edit_is_the_identity(family: tuple[Grammar, str]) -> None:
    grammar, text = family
    program = parse_program(text, grammar)
    assert program.apply([]).outcome is Outcome.NO_OP
    variant, check = program.render(program.values)
    assert variant.source == text and variant.hash == program.hash and check.ok


@given(families, st.data())
def test_only_edited_literals_change(family: tuple[Grammar, str], data: st.DataObject) -> None:
    grammar, text = family
    program = parse_program(text, grammar)
    result = program.apply(data.draw(edits(program)))
    assume(result.variant is not None)
    assert result.variant is not None
    source = result.variant.source
    cursor_a = cursor_b = 0
    changed = {e.site for e in result.variant.changes}
    for site in program.sites:
        fixed = text[cursor_a:site.start]
        assert source[cursor_b:cursor_b + len(fixed)] == fixed
        cursor_b += len(fixed)
        new_literal = parse_program(source, program.grammar).site(site.name).literal
        if site.name not in changed:
            assert new_literal == site.literal
        cursor_b += len(new_literal)
        cursor_a = site.end
    assert source[cursor_b:] == text[cursor_a:]


@given(families, st.data())
def test_diff_of_apply_is_the_edits(family: tuple[Grammar, str], data: st.DataObject) -> None:
    grammar, text = family
    program = parse_program(text, grammar)
    result = program.apply(data.draw(edits(program)))
    assume(result.variant is not None)
    assert result.variant is not None
    diff = diff_text(program, result.variant.source)
    assert diff.grounded
    assert diff.edits == result.variant.changes


@given(families, st.data())
def test_every_accepted_variant_reparses_and_holds(family: tuple[Grammar, str],
                                                   data: st.DataObject) -> None:
    grammar, text = family
    program = parse_program(text, grammar)
    result = program.apply(data.draw(edits(program, in_domain=data.draw(st.booleans()))))
    assume(result.variant is not None)
    assert result.variant is not None
    # Re-parsed with the grammar it was checked against: the parent's, its relative domains
    # resolved around the parent's values (an out-of-domain variant's own values may leave
    # a relative domain nothing: n_layer -4 with "the file's value ± 4" from 1 up).
    resolved = program.grammar
    again = parse_program(result.variant.source, resolved)  # re-parses, sites still found
    assert again.hash == result.variant.hash == canonical_hash(result.variant.source)
    assert again.values == dict(result.variant.values) or not result.ok
    verdict = resolved.check(again.values, again.present)
    assert verdict.outcome is result.outcome


@given(families, st.integers(0, 2**32))
def test_seeded_random_proposer_is_deterministic(family: tuple[Grammar, str], seed: int) -> None:
    grammar, text = family
    program = parse_program(text, grammar)
    first = [p.mutation.variant and p.mutation.variant.hash
             for p in Refiner(2).propose(program, 4, random.Random(seed))]
    second = [p.mutation.variant and p.mutation.variant.hash
              for p in Refiner(2).propose(program, 4, random.Random(seed))]
    assert first == second


@given(families, st.integers(0, 2**32))
def test_random_refinements_are_accepted_and_grounded(family: tuple[Grammar, str],
                                                      seed: int) -> None:
    grammar, text = family
    program = parse_program(text, grammar)
    result = Refiner().refine(program, random.Random(seed))
    if result.ok:
        assert result.variant is not None
        assert diff_programs(program, parse_program(result.variant.source,
                                                    program.grammar)).grounded


@given(grammars())
def test_template_source_binds_every_site(grammar: Grammar) -> None:
    program = parse_program(template_source(grammar), grammar)
    assert program.present == {s.name for s in grammar.sites}
    parse_module(program.text)


def test_explicit_edit_example() -> None:
    program = parse_program(seed_source("paper"), T5)
    result = program.apply([Edit("d_ff", 1331)])
    assert result.variant is not None
    assert result.variant.source == seed_source("paper").replace("1024", "1331")
