"""Domains relative to the file being searched: the TOML spelling, resolution against the
seed (once: no drift), the kinds kept consistent, the built-in nanogpt and gpt grammars
around the file's own size, and bad input refused with one line naming the site."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings

from deepphoenix.engine import Run, preset
from deepphoenix.errors import GrammarError, SiteError
from deepphoenix.grammar import Domain, OperatorKind, format_grammar, load_grammar, parse_grammar
from deepphoenix.mutator import parse_bundle, parse_program
from deepphoenix.proposers import Refiner
from deepphoenix.seeds import seed_source
from deepphoenix.testing import values

FILES = Path(__file__).parent / "files"
NANOGPT_MODEL = (FILES / "nanogpt_model.py").read_text(encoding="utf-8")

GRAMMAR = """
[sites.width]
select = "name:width"
kind = "int"
relative = { times = 4 }
multiple_of = 32
[sites.depth]
select = "name:depth"
kind = "int"
relative = { plus = 4 }
min = 1
mutation = "step"
step = 2
[sites.context]
select = "name:context"
kind = "log-int"
relative = { times = [1, 4] }
multiple_of = 64
optional = true
[sites.rate]
select = "name:rate"
kind = "log-float"
relative = { times = [0.1, 3] }
optional = true
"""
SOURCE = "width = 64\ndepth = 2\ncontext = 64\nrate = 0.001\n"


def shrunk_nanogpt(n_layer: int = 2, n_head: int = 2, n_embd: int = 64,
                   block_size: int = 64) -> str:
    """The project's nanoGPT-style model file with its GPTConfig shrunk, as a user does."""
    text = NANOGPT_MODEL
    for name, value in (("n_layer", n_layer), ("n_head", n_head), ("n_embd", n_embd),
                        ("block_size", block_size)):
        text, found = re.subn(rf"(    {name}: int = )\d+", rf"\g<1>{value}", text)
        assert found == 1
    return text


def test_the_toml_spelling_parses_and_describes_itself() -> None:
    grammar = parse_grammar(GRAMMAR)
    width, depth, context = (grammar.site(n) for n in ("width", "depth", "context"))
    assert width.relative is not None and (width.relative.low, width.relative.high) == (
        0.25, 4.0)
    assert depth.relative is not None and (depth.relative.low, depth.relative.high) == (-4, 4)
    assert width.describe_domain() == "the file's value /4..x4, multiple of 32"
    assert depth.describe_domain() == "the file's value ±4, within 1..inf"
    assert context.describe_domain().startswith("the file's value x1..x4")
    assert {s.name for s in grammar.unresolved} == {"width", "depth", "context", "rate"}
    assert parse_grammar(format_grammar(grammar)) == grammar  # written back as it reads


def test_resolution_against_the_file_keeps_grids_log_kinds_and_operators() -> None:
    program = parse_program(SOURCE, parse_grammar(GRAMMAR))
    grammar = program.grammar
    assert not grammar.unresolved
    width, depth = grammar.site("width"), grammar.site("depth")
    assert width.domain == Domain(32, 256, multiple_of=32)  # 16 rounds up onto the grid
    assert width.describe_domain() == "32..256, multiple of 32 (64 /4..x4)"
    assert width.operator.kind is OperatorKind.STEP  # 8 grid steps: the default for them
    assert depth.domain == Domain(1, 6)  # 2 - 4 clamped by min = 1
    assert (depth.operator.kind, depth.operator.k) == (OperatorKind.STEP, 2)  # as written
    assert grammar.site("context").domain == Domain(64, 256, multiple_of=64)
    rate = grammar.site("rate").domain
    assert (rate.low, rate.high) == (0.0001, 0.003)
    wide = parse_program(SOURCE.replace("width = 64", "width = 768"), parse_grammar(GRAMMAR))
    assert wide.grammar.site("width").domain == Domain(192, 3072, multiple_of=32)
    assert wide.grammar.site("width").operator.kind is OperatorKind.SCALE  # 90 grid steps
    one = parse_program("x = 1\n", parse_grammar(
        "[sites.x]\nselect = 'name:x'\nkind = 'log-int'\nrelative = { plus = 3 }\n"))
    assert one.grammar.site("x").domain == Domain(1, 4)  # a log kind stays positive


@pytest.mark.parametrize("value", [0.1234567890126, 3e-4, 7.000000000000001e-05,
                                   883900900217530816, 3, 1])
def test_the_files_own_value_is_inside_its_resolved_domain(value: float) -> None:
    kind = "int" if isinstance(value, int) else "float"
    for relative in ("{ times = [0.3, 3] }", "{ times = [1, 1.7] }", "{ plus = [-1, 2] }"):
        grammar = parse_grammar(f"[sites.x]\nkind = '{kind}'\nrelative = {relative}\n")
        program = parse_program(f"x = {value!r}\n", grammar)
        assert program.grammar.check(program.values).ok, program.grammar.site("x").domain


def test_domains_resolve_once_against_the_seed_and_do_not_drift() -> None:
    seed = parse_program(SOURCE, parse_grammar(GRAMMAR))
    rng = random.Random(0)
    program = seed
    for _ in range(40):  # a walk of refinements, each parent read with the seed's grammar
        mutation = Refiner(1).refine(program, rng)
        assert mutation.ok and mutation.variant is not None, mutation.reason
        program = parse_program(mutation.variant.source, seed.grammar)
        assert program.grammar is seed.grammar
    assert program.values != seed.values
    for name in ("width", "depth", "context"):
        assert program.grammar.site(name).domain == seed.grammar.site(name).domain
    # the same file read afresh resolves around its own values instead
    moved = parse_program(program.text, parse_grammar(GRAMMAR))
    assert moved.grammar.site("width").relative.anchor == program.values["width"]  # type: ignore[union-attr]


def test_a_site_the_file_does_not_bind_is_never_proposed_and_stays_unresolved() -> None:
    program = parse_program("width = 64\ndepth = 2\n", parse_grammar(GRAMMAR))
    assert {s.name for s in program.grammar.unresolved} == {"context", "rate"}
    assert {s.name for s in program.proposable} == {"width", "depth"}
    assert program.grammar.check(program.values, program.present).ok
    variant = program.apply({"width": 256}).variant
    assert variant is not None  # its variants keep the very grammar, the rest unresolved
    assert parse_program(variant.source, program.grammar).grammar is program.grammar


@pytest.mark.parametrize(("source", "message"), [
    ("width = 0\ndepth = 2\n",
     "site 'width' of grammar 'grammar' has a domain /4..x4 of the file's value, which needs "
     "a value above 0, but the source has 0"),
    ("width = 4\ndepth = 2\n",
     "site 'width' of grammar 'grammar': a domain /4..x4 of the file's value (4 in the "
     "source) leaves no value of the site multiple of 32"),
    ("width = 64\ndepth = -9\n",
     "site 'depth' of grammar 'grammar': a domain ±4 of the file's value (-9 in the source) "
     "leaves no value of the site within 1..inf"),
])
def test_a_file_that_cannot_resolve_is_refused_naming_the_site(source: str,
                                                                message: str) -> None:
    with pytest.raises(SiteError) as caught:
        parse_program(source, parse_grammar(GRAMMAR))
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_nullable_site_written_none_cannot_resolve() -> None:
    grammar = parse_grammar("[sites.kv]\nselect = 'name:kv'\nkind = 'int'\nnullable = true\n"
                            "relative = { times = 2 }\n")
    with pytest.raises(SiteError, match=r"site 'kv' .* but model.py writes None there"):
        parse_program("kv = None\n", grammar, "model.py")


@pytest.mark.parametrize(("body", "message"), [
    ("kind = 'int'\nrelative = 4", "expected a table with one of times, plus"),
    ("kind = 'int'\nrelative = { times = 4, plus = 1 }", "expected a table with one of"),
    ("kind = 'int'\nrelative = { times = 0.5 }", "times takes a factor >= 1"),
    ("kind = 'int'\nrelative = { times = [2, 4] }", "0 < low <= 1 <= high"),
    ("kind = 'int'\nrelative = { plus = -1 }", "plus takes an amount >= 0"),
    ("kind = 'int'\nrelative = { plus = [1, 3] }", "low <= 0 <= high"),
    ("kind = 'int'\nrelative = { plus = 1.5 }", "moves by whole amounts"),
    ("kind = 'int'\nrelative = { times = 'x4' }", "takes a number or a [low, high] pair"),
    ("kind = 'log-float'\nrelative = { plus = 1.0 }", "use times"),
    ("kind = 'categorical'\nchoices = ['a', 'b']\nrelative = { times = 2 }",
     "applies to numeric sites"),
    ("kind = 'int'\nvalues = [1, 2]\nrelative = { times = 2 }", "not both"),
    ("kind = 'int'\nderive = 'y'\nrelative = { times = 2 }", "not derived or fixed"),
])
def test_bad_relative_domains_name_the_key_and_line(body: str, message: str) -> None:
    text = f"[sites.y]\nkind = 'int'\nmin = 1\nmax = 9\n[sites.x]\n{body}\n"
    line = text.splitlines().index(next(x for x in text.splitlines()
                                        if x.startswith("relative"))) + 1
    with pytest.raises(GrammarError) as caught:
        parse_grammar(text, origin="g.toml")
    assert f"g.toml:{line}: key 'sites.x.relative'" in str(caught.value)
    assert message in str(caught.value)


def test_a_bundle_resolves_against_the_merged_values() -> None:
    bundle = parse_bundle([("model.py", "width = 64\ndepth = 2\n"),
                           ("config.py", "width = 128\n")], parse_grammar(GRAMMAR))
    assert bundle.grammar.site("width").domain == Domain(32, 512, multiple_of=32)
    assert bundle.apply({"width": 512}).ok and not bundle.apply({"width": 544}).ok


# -- the built-in grammars ------------------------------------------------------------------


def test_a_small_nanogpt_is_searched_around_its_own_size() -> None:
    # The issue: a 2-layer, 64-wide nanoGPT drew 19-43 layers and n_embd up to 3,776.
    program = parse_program(shrunk_nanogpt(), load_grammar("nanogpt"), "model.py")
    domains = {n: program.grammar.site(n).domain
               for n in ("n_layer", "n_head", "n_embd", "block_size")}
    assert domains == {"n_layer": Domain(1, 6), "n_head": Domain(1, 8),
                       "n_embd": Domain(32, 256, multiple_of=32),
                       "block_size": Domain(64, 256, multiple_of=64)}
    rng, seen, values = random.Random(1), set(), program.values
    for _ in range(300):  # a random walk: each variant's values are the next parent's
        step = Refiner(2).refine_values(program, values, rng)
        assert step is not None
        values = step[0]
        seen.add((values["n_layer"], values["n_embd"]))
        assert 1 <= values["n_layer"] <= 6 and 32 <= values["n_embd"] <= 256  # type: ignore[operator]
    assert {layers for layers, _ in seen} == set(range(1, 7))
    assert {width for _, width in seen} == set(range(32, 257, 32))
    # and GPT-2's 12 x 768 around its own
    big = parse_program(NANOGPT_MODEL, load_grammar("nanogpt")).grammar
    assert big.site("n_layer").domain == Domain(8, 16)
    assert big.site("n_embd").domain == Domain(192, 3072, multiple_of=32)


def test_the_gpt_seed_resolves_to_the_domains_its_benchmarks_searched() -> None:
    # The gpt-cpu preset's seed: the same domains as the absolute ones it had before.
    grammar = parse_program(seed_source("gpt"), load_grammar("gpt")).grammar
    found = {n: grammar.site(n).domain for n in ("n_layer", "n_head", "n_embd", "batch_size")}
    assert found == {"n_layer": Domain(1, 6), "n_head": Domain(1, 8),
                     "n_embd": Domain(32, 256, multiple_of=32), "batch_size": Domain(4, 64)}
    assert [grammar.site(n).operator.kind for n in found] == [
        OperatorKind.STEP, OperatorKind.STEP, OperatorKind.STEP, OperatorKind.SCALE]
    # a file of the seed's family at another size is searched around its own
    larger = seed_source("gpt").replace("n_layer=2, n_head=4, n_embd=128",
                                        "n_layer=8, n_head=8, n_embd=512")
    grammar = parse_program(larger, load_grammar("gpt")).grammar
    assert {n: grammar.site(n).domain for n in ("n_layer", "n_head", "n_embd")} == {
        "n_layer": Domain(4, 12), "n_head": Domain(2, 16),
        "n_embd": Domain(128, 1024, multiple_of=32)}


def test_a_run_resolves_against_its_stored_seed_on_resume(tmp_path: Path) -> None:
    model = tmp_path / "model.py"
    model.write_text(shrunk_nanogpt(), encoding="utf-8")
    config = preset("smoke").with_overrides(seed_source=str(model), grammar="nanogpt",
                                            proposer="random")
    run = Run(tmp_path / "run", config)
    started = run.dir.grammar
    assert started.site("n_embd").domain == Domain(32, 256, multiple_of=32)
    assert run.dir.seed_program.grammar is started
    run.close()
    model.write_text(shrunk_nanogpt(n_layer=12, n_embd=768), encoding="utf-8")  # edited
    resumed = Run(tmp_path / "run", resume=True)
    try:
        assert resumed.dir.grammar == started
    finally:
        resumed.close()


@given(width=values(parse_grammar(GRAMMAR).site("width")),
       rate=values(parse_grammar(GRAMMAR).site("rate")))
@settings(max_examples=60, deadline=None)
def test_testing_values_of_an_unresolved_site_are_values_a_file_resolves(width: int,
                                                                          rate: float) -> None:
    text = SOURCE.replace("width = 64", f"width = {width}").replace("rate = 0.001",
                                                                      f"rate = {rate!r}")
    program = parse_program(text, parse_grammar(GRAMMAR))  # never "needs a value above 0"
    assert program.grammar.check(program.values, program.present).ok
