"""Constrained decoding grounds every sample by construction: random walks through the
automaton (any model's choices) always give valid, non-no-op candidates."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepphoenix.grammar import load_grammar, parse_grammar
from deepphoenix.mutator import TargetFormat, ground, parse_program
from deepphoenix.outcome import Outcome
from deepphoenix.proposers import make_dataset
from deepphoenix.proposers._constraint import ConstraintAutomaton, build_constraint
from deepphoenix.proposers._tokenizer import train_tokenizer
from deepphoenix.seeds import seed_source

T5 = load_grammar("t5")


def _walk(automaton: ConstraintAutomaton, rng: random.Random, limit: int = 200) -> list[int]:
    generated: list[int] = []
    for _ in range(limit):
        token = rng.choice(automaton.allowed(generated))
        if token in (0, 2):
            return generated
        generated.append(token)
    raise AssertionError("the automaton never ended")


def _setup(seed_name: str, fmt: str) -> tuple[Any, Any, ConstraintAutomaton]:
    parent = parse_program(seed_source(seed_name), T5)
    pairs = make_dataset(parent, 400, seed=0, fmt=fmt)
    tok = train_tokenizer([t for p in pairs for t in (p.input, p.target)], 600)
    spec = build_constraint(parent, tok, fmt)
    automaton = ConstraintAutomaton(
        spec, lambda text: tok.encode(text, add_special_tokens=False).ids)
    return parent, tok, automaton


@pytest.mark.parametrize("seed_name", ["paper", "tiny"])
@pytest.mark.parametrize("fmt", ["source", "edits"])
def test_random_walks_are_always_valid(seed_name: str, fmt: str) -> None:
    parent, tok, automaton = _setup(seed_name, fmt)
    rng = random.Random(0)
    for _ in range(150):
        text = tok.decode(_walk(automaton, rng))
        result = ground(parent, text, fmt)
        assert result.outcome is Outcome.OK, (text, result.reason)


def test_derived_site_is_forced_to_its_value() -> None:
    _, tok, automaton = _setup("paper", "source")
    rng = random.Random(1)
    for _ in range(50):
        values = parse_program(tok.decode(_walk(automaton, rng)), T5).values
        assert values["d_kv"] == 512 // values["num_heads"]  # type: ignore[operator]


def test_first_step_of_source_is_the_parents_first_token() -> None:
    parent, tok, automaton = _setup("paper", "source")
    assert automaton.allowed([]) == [tok.encode(parent.text).ids[0]]


def test_edits_offer_every_proposable_site() -> None:
    parent, tok, automaton = _setup("paper", "edits")
    rng = random.Random(2)
    sites = {ground(parent, tok.decode(_walk(automaton, rng)), "edits").variant.changes[0].site
             for _ in range(200)}
    assert sites == {"num_layers", "num_decoder_layers", "d_ff", "num_heads"}


def test_off_grammar_tokens_end_the_sequence() -> None:
    _, _, automaton = _setup("paper", "source")
    assert automaton.allowed([3, 3]) == [2]


FLOATS = parse_grammar("""
[sites.lr]
select = "name:lr"
kind = "float"
min = 0.0001
max = 0.5
[sites.steps]
select = "name:steps"
kind = "int"
min = 10
max = 5000
""")


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32))
def test_float_and_int_slots_of_other_grammars(seed: int) -> None:
    text = "lr = 0.01\nsteps = 100\nrun(lr, steps)\n"
    parent = parse_program(text, FLOATS)
    corpus = [text.replace("0.01", f"0.{i:03d}").replace("100", str(i * 7 + 10))
              for i in range(1, 300)]
    tok = train_tokenizer(corpus, 400)
    for fmt in (TargetFormat.SOURCE, TargetFormat.EDITS):
        automaton = ConstraintAutomaton(
            build_constraint(parent, tok, fmt),
            lambda t: tok.encode(t, add_special_tokens=False).ids)
        rng = random.Random(seed)
        for _ in range(20):
            out = tok.decode(_walk(automaton, rng))
            result = ground(parent, out, fmt)
            assert result.outcome is Outcome.OK, (out, result.reason)


DOMAINS = parse_grammar("""
[sites.heads]
select = "name:heads"
kind = "int"
values = [4, 8, 12, 16]
[sites.width]
select = "name:width"
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
kind = "log-float"
values = [0.0001, 0.0003, 0.001]
""")


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 2**32))
def test_slots_keep_listed_values_and_grids(seed: int) -> None:
    text = "heads = 8\nwidth = 512\nbatch = 32\nlr = 0.0003\nrun(heads, width, batch, lr)\n"
    parent = parse_program(text, DOMAINS)
    corpus = [text.replace("512", str(64 * i)).replace("32", str(i)).replace("8", str(i % 17))
              for i in range(1, 300)]
    tok = train_tokenizer(corpus, 400)
    seen: set[str] = set()
    for fmt in (TargetFormat.SOURCE, TargetFormat.EDITS):
        automaton = ConstraintAutomaton(
            build_constraint(parent, tok, fmt),
            lambda t: tok.encode(t, add_special_tokens=False).ids)
        rng = random.Random(seed)
        for _ in range(30):
            out = tok.decode(_walk(automaton, rng))
            result = ground(parent, out, fmt)
            assert result.outcome is Outcome.OK, (out, result.reason)
            assert result.variant is not None
            seen.update(e.site for e in result.variant.changes)
    assert {"heads", "width", "lr"} <= seen


def test_structural_sites_are_written_as_alternative_names() -> None:
    from pathlib import Path

    from deepphoenix.grammar import read_grammar_file

    fixtures = Path(__file__).parent.parent / "fixtures" / "structural"
    grammar = read_grammar_file(fixtures / "toy.toml")
    parent = parse_program((fixtures / "toy.py").read_text(), grammar)
    pairs = make_dataset(parent, 100, seed=0, fmt="edits")
    tok = train_tokenizer([t for p in pairs for t in (p.input, p.target)], 300)
    automaton = ConstraintAutomaton(build_constraint(parent, tok, "edits"))
    rng = random.Random(0)
    written = set()
    for _ in range(200):
        text = tok.decode(_walk(automaton, rng))
        result = ground(parent, text, "edits")
        assert result.outcome is Outcome.OK, (text, result.reason)
        written.add(text.replace(" ", ""))
    assert {"mlp=swiglu", "block=parallel", "qk_norm=on"} <= written  # never the parent's
    assert not {"mlp=plain", "block=prenorm", "qk_norm=off"} & written


CONDITIONAL = parse_grammar("""
[sites.depth]
select = "name:depth"
kind = "int"
min = 1
max = 8
[sites.rate]
select = "name:rate"
kind = "int"
min = 1
max = 90
when = "depth > 2"
""")


@pytest.mark.parametrize("fmt", ["source", "edits"])
def test_a_conditional_site_whose_condition_is_false_is_held(fmt: str) -> None:
    text = "depth = {depth}\nrate = 50\nrun(depth, rate)\n"
    corpus = [text.format(depth=d).replace("50", str(r)) for d in range(1, 9)
              for r in range(1, 91, 7)]
    tok = train_tokenizer(corpus, 400)
    for depth, held in ((2, True), (5, False)):
        parent = parse_program(text.format(depth=depth), CONDITIONAL)
        automaton = ConstraintAutomaton(build_constraint(parent, tok, fmt),
                                        lambda t: tok.encode(t, add_special_tokens=False).ids)
        rng = random.Random(0)
        rates = set()
        for _ in range(60):
            result = ground(parent, tok.decode(_walk(automaton, rng)), fmt)
            if result.outcome is Outcome.INVARIANT:  # depth moved to 2 or below, rate too
                assert "'rate' is inactive" in result.reason
                continue
            assert result.ok and result.variant is not None, result.reason
            rates.add(result.variant.value("rate"))
        assert (rates == {50}) is held
