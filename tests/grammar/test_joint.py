"""Joint moves (`moves_with`), hidden sites (`hidden`, `read`), conditional sites (`when`),
optional sites, and derived floats."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from deepphoenix.errors import GrammarError, SiteError
from deepphoenix.grammar import Grammar, parse_grammar, repair
from deepphoenix.mutator import canonical_hash, diff_text, parse_program
from deepphoenix.outcome import Outcome
from deepphoenix.proposers import DistinctVariants, Refiner

FILES = Path(__file__).parent / "files"
MODEL = (FILES / "nanogpt_model.py").read_text(encoding="utf-8")

SITES = """
[sites.block_size]
select = "field:GPTConfig.block_size"
kind = "log-int"
min = 64
max = 4096
multiple_of = 64

[sites.n_layer]
select = "field:GPTConfig.n_layer"
kind = "int"
min = 1
max = 48

[sites.dropout]
select = "field:GPTConfig.dropout"
kind = "float"
values = [0.0, 0.1, 0.2]

[sites.bias]
select = "field:GPTConfig.bias"
kind = "bool"
"""

COUPLED = SITES + """
[sites.n_head]
select = "field:GPTConfig.n_head"
kind = "int"
min = 1
max = 32
moves_with = ["n_embd"]

[sites.n_embd]
select = "field:GPTConfig.n_embd"
kind = "int"
min = 64
max = 4096
multiple_of = 64
moves_with = ["n_head"]
"""

HIDDEN = SITES + """
[sites.n_head]
select = "field:GPTConfig.n_head"
kind = "int"
min = 1
max = 32

[sites.head_size]
hidden = true
read = "n_embd // n_head"
kind = "int"
values = [16, 32, 64, 128]

[sites.n_embd]
select = "field:GPTConfig.n_embd"
derive = "n_head * head_size"
"""

REJECTING = SITES + """
[sites.n_head]
select = "field:GPTConfig.n_head"
kind = "int"
min = 1
max = 32

[sites.n_embd]
select = "field:GPTConfig.n_embd"
kind = "int"
min = 64
max = 4096
"""

INVARIANTS = 'invariants = ["n_embd % n_head == 0"]\n'


def _change_rates(grammar: Grammar, n: int = 600) -> dict[str, float]:
    """The share of accepted single-step refinements (the paper's proposal) that change
    each site, over `n` refinements with a fixed seed."""
    program = parse_program(MODEL, grammar)
    proposer, rng = Refiner(1), random.Random(1234)
    counts: Counter[str] = Counter()
    for i in range(n):
        mutation = proposer.refine(program, rng)
        assert mutation.ok and mutation.variant is not None
        assert canonical_hash(mutation.variant.source) == mutation.variant.hash  # re-parses
        if i < 20:  # the sites are found again, holding the values (libcst: slower)
            again = parse_program(mutation.variant.source, grammar)
            assert again.values == dict(mutation.variant.values)
        counts.update(e.site for e in mutation.variant.changes)
    return {name: counts[name] / n for name in program.present}


@pytest.mark.parametrize("body", [COUPLED, HIDDEN], ids=["moves_with", "hidden head_size"])
def test_coupled_sites_move_as_often_as_the_others(body: str) -> None:
    rates = _change_rates(parse_grammar(INVARIANTS + body))
    others = [rates[n] for n in ("block_size", "n_layer", "dropout", "bias")]
    for coupled in ("n_head", "n_embd"):
        assert min(others) / 3 <= rates[coupled] <= max(others) * 3, rates


def test_without_joint_moves_the_coupled_sites_are_frozen() -> None:
    # The baseline the issue measured: with rejection alone, distinct variants almost never
    # move n_head (every ±1 breaks n_embd % n_head == 0 at 768).
    grammar = parse_grammar(INVARIANTS + REJECTING)
    program = parse_program(MODEL, grammar)
    found = list(DistinctVariants(Refiner(1), program, 200, random.Random(0)))
    changed = Counter(e.site for m in found if m.variant for e in m.variant.changes)
    assert changed["n_head"] <= 2 < changed["n_layer"]


def test_a_joint_move_takes_the_partner_to_its_nearest_valid_value() -> None:
    grammar = parse_grammar(INVARIANTS + COUPLED)
    program = parse_program(MODEL, grammar)
    moved = {**program.values, "n_head": 16}
    fixed = repair(grammar, moved, ["n_embd"], program.present)
    assert fixed is not None and fixed["n_embd"] == 768  # 768 = 16 * 48 already divides
    moved = {**program.values, "n_head": 13}
    fixed = repair(grammar, moved, ["n_embd"], program.present)
    assert fixed is not None and fixed["n_embd"] == 832  # the multiple of 64 and 13 nearest
    assert repair(grammar, {**program.values, "n_head": 5000}, ["n_embd"]) is None


def test_hidden_site_is_read_from_the_source_and_round_trips() -> None:
    grammar = parse_grammar(INVARIANTS + HIDDEN)
    program = parse_program(MODEL, grammar)
    assert program.values["head_size"] == 64 and "head_size" not in program.present
    result = program.apply({"head_size": 32})
    assert result.ok and result.variant is not None
    assert "n_embd: int = 384\n" in result.variant.source
    assert [str(e) for e in result.variant.changes] == ["n_embd=384", "head_size=32"]
    diff = diff_text(program, result.variant.source)
    assert diff.grounded and diff.edits == result.variant.changes
    assert program.apply({"head_size": 48}).outcome is Outcome.OUT_OF_DOMAIN


def test_conditional_sites_move_only_while_their_condition_holds() -> None:
    grammar = parse_grammar("""
[sites.use_dropout]
select = "name:use_dropout"
kind = "bool"

[sites.p]
select = "name:p"
kind = "float"
values = [0.1, 0.2, 0.3]
when = "use_dropout"
""")
    off = parse_program("use_dropout = False\np = 0.1\n", grammar)
    assert off.apply({"p": 0.2}).outcome is Outcome.INVARIANT
    assert off.apply({"use_dropout": True, "p": 0.2}).ok
    assert off.apply({"use_dropout": False, "p": 0.7}).outcome is Outcome.INVARIANT
    rng = random.Random(0)
    for _ in range(50):
        edits = Refiner(1).draw_edits(off, rng)
        assert edits is not None and [e.site for e in edits] == ["use_dropout"]
    on = parse_program("use_dropout = True\np = 0.9\n", grammar)  # p out of domain: checked
    assert not grammar.check(on.values, on.present).ok


def test_optional_and_bool_sites_may_be_missing() -> None:
    grammar = parse_grammar("""
invariants = ["lr < 1"]

[sites.bias]
select = "name:bias"
kind = "bool"

[sites.lr]
select = "name:lr"
kind = "log-float"
min = 1e-5
max = 1e-1
optional = true

[sites.min_lr]
select = "name:min_lr"
kind = "log-float"
derive = "lr / 10"
""")
    program = parse_program("min_lr = 0.5\n", grammar)  # no bias, no lr: neither required
    assert program.values == {"min_lr": 0.5}
    assert grammar.check(program.values, program.present).ok
    both = parse_program("lr = 6e-4\nmin_lr = 6e-5\nbias = True\n", grammar)
    assert grammar.check(both.values, both.present).ok  # 6e-4 / 10 is 6e-5
    result = both.apply({"lr": 1e-3})
    assert result.ok and result.variant is not None
    assert "min_lr = 0.0001\n" in result.variant.source


def test_bad_joint_keys_name_key_and_line() -> None:
    with pytest.raises(GrammarError, match=r"<toml>:3: key 'sites.a.moves_with'.*'c'"):
        parse_grammar("[sites.a]\nkind = 'int'\nmoves_with = ['c']\n[sites.b]\nkind = 'int'\n")
    with pytest.raises(GrammarError, match=r"key 'sites.h.hidden'.*'read'"):
        parse_grammar("[sites.h]\nkind = 'int'\nhidden = true\n")
    with pytest.raises(GrammarError, match=r"key 'sites.a.read'.*hidden sites"):
        parse_grammar("[sites.a]\nkind = 'int'\nread = 'a'\n")
    with pytest.raises(GrammarError, match=r"key 'sites.h.select'.*hidden"):
        parse_grammar("[sites.h]\nkind = 'int'\nhidden = true\ndefault = 1\nselect = 'name:h'\n")
    with pytest.raises(GrammarError, match=r"key 'sites.a.when'.*unknown site 'nope'"):
        parse_grammar("[sites.a]\nkind = 'int'\nwhen = 'nope'\n")


def test_a_hidden_site_that_cannot_be_read_is_left_out() -> None:
    grammar = parse_grammar("""
[sites.a]
select = "name:a"
kind = "int"
optional = true

[sites.b]
select = "name:b"
kind = "int"

[sites.h]
hidden = true
kind = "int"
read = "a * 2"
""")
    absent = parse_program("b = 1\n", grammar)  # a is optional and missing
    assert "h" not in absent.values and [s.name for s in absent.proposable] == ["b"]
    present = parse_program("a = 3\nb = 1\n", grammar)
    assert present.values["h"] == 6 and {s.name for s in present.proposable} == {"a", "b", "h"}


def test_a_none_default_is_an_unset_nullable_site() -> None:
    grammar = parse_grammar("""
invariants = ["heads % kv_heads == 0"]

[sites.heads]
select = "parameter:Config.__init__.heads"
kind = "int"
min = 1
max = 64

[sites.kv_heads]
select = "parameter:Config.__init__.kv_heads"
kind = "int"
values = [1, 2, 4, 8]
nullable = true
""")
    text = "class Config:\n    def __init__(self, heads=8, kv_heads=None):\n        pass\n"
    program = parse_program(text, grammar)
    assert "kv_heads" in program.present and "kv_heads" not in program.values
    assert grammar.check(program.values, program.present).ok  # unset: the invariant waits
    result = program.apply({"kv_heads": 4})
    assert result.ok and result.variant is not None
    assert "kv_heads=4)" in result.variant.source
    assert diff_text(program, result.variant.source).edits == result.variant.changes
    rng = random.Random(0)
    moved = {e.site for _ in range(100) for e in Refiner(1).draw_edits(program, rng) or ()}
    assert moved == {"heads", "kv_heads"}  # the unset site is proposed by a fresh draw
    plain = parse_grammar("[sites.kv_heads]\nselect = 'parameter:*.kv_heads'\nkind = 'int'\n")
    with pytest.raises(SiteError, match="holding None; declare the site nullable"):
        parse_program(text, plain)
