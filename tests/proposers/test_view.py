"""The program view: what `learned` reads instead of the whole file. Its length grows with
the sites, not the file; its form is fixed; what a view-reading model writes is grounded on
the parent like any edit script."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from deepphoenix.errors import ConfigError
from deepphoenix.grammar import NUMERIC_KINDS, load_grammar
from deepphoenix.mutator import (
    Bundle,
    Program,
    TargetFormat,
    infer_grammar,
    parse_bundle,
    parse_edit_script,
    parse_program,
)
from deepphoenix.outcome import Outcome
from deepphoenix.proposers import (
    MAX_TOKENS,
    Refiner,
    make_dataset,
    prepare_data,
    view_sites,
    view_text,
)
from deepphoenix.proposers._constraint import ConstraintAutomaton
from deepphoenix.proposers._t5 import T5Sampler
from deepphoenix.proposers._tokenizer import train_tokenizer
from deepphoenix.proposers._view import full_script, view_target
from deepphoenix.seeds import seed_source
from tests.search.project import CONFIG as PROJECT_CONFIG
from tests.search.project import MODEL as PROJECT_MODEL

FILES = Path(__file__).parent.parent / "grammar" / "files"
NANOGPT = load_grammar("nanogpt")
MODEL = parse_program((FILES / "nanogpt_model.py").read_text(encoding="utf-8"), NANOGPT)
TINY = parse_program(seed_source("tiny"), load_grammar("t5"))
# A model file and the config that overrides some of its values: one candidate (`--with`).
BUNDLE = parse_bundle([("model.py", PROJECT_MODEL), ("config/small.py", PROJECT_CONFIG)],
                      NANOGPT)


def _long_program(sites: int, filler: int) -> str:
    """A config class of `sites` knobs (ints, floats, bools; names with numbers in them),
    then `filler` functions of code that has no site."""
    rng = random.Random(1)
    lines = ["from dataclasses import dataclass", "", "", "@dataclass", "class Config:"]
    for i in range(sites):
        kind = i % 4
        if kind == 0:
            lines.append(f"    block_{i}_hidden_width: int = {rng.choice([64, 128, 256, 512])}")
        elif kind == 1:
            lines.append(f"    block_{i}_num_heads: int = {rng.randint(1, 16)}")
        elif kind == 2:
            lines.append(f"    block_{i}_dropout: float = {rng.choice([0.1, 0.2, 0.3])}")
        else:
            lines.append(f"    block_{i}_use_bias: bool = {rng.choice(['True', 'False'])}")
    lines += ["", ""]
    lines += [f"def helper_{j}(x):\n    return x * {j} + len(str(x))\n" for j in range(filler)]
    return "\n".join(lines) + "\n"


def test_the_view_is_one_line_a_site_with_value_kind_and_domain() -> None:
    lines = view_text(MODEL).splitlines()
    bounds = r"-?[0-9.e+-]+\.\.-?[0-9.e+-]+"  # the grammar's (or the file's) numbers
    assert re.fullmatch(rf"n_layer=12 int {bounds}", lines[0])
    assert re.fullmatch(rf"n_head=12 int {bounds}", lines[1])
    assert re.fullmatch(rf"n_embd=768 int {bounds} %[0-9]+", lines[2])  # the grid
    assert re.fullmatch(rf"block_size=1024 log-int {bounds} %[0-9]+", lines[3])
    assert lines[4:6] == ["dropout=0.0 float {0.0|0.05|0.1|0.2|0.3}", "bias=True bool"]
    assert "mlp=gelu code {gelu|relu|relu2|swiglu}" in lines
    assert "block=prenorm code {prenorm|postnorm|parallel}" in lines
    # One line per proposable site, in the grammar's order (not the file's: the
    # structural sites come first in the file), and nothing else.
    proposable = {spec.name for spec in MODEL.proposable}
    assert [line.split("=")[0] for line in lines] == [
        spec.name for spec in NANOGPT.sites if spec.name in proposable]
    assert next(spec.name for spec in MODEL.proposable) != "n_layer"
    derived = parse_program(seed_source("paper"), load_grammar("t5"))
    assert "d_kv" in derived.values and "d_kv=" not in view_text(derived)


def test_the_view_grows_with_the_sites_not_with_the_file() -> None:
    padding = "".join(f"\ndef unused_{i}(x):\n    return x + {i}\n" for i in range(400))
    padded = parse_program(MODEL.text + padding, NANOGPT)
    assert len(padded.text) > 3 * len(MODEL.text)
    assert view_text(padded) == view_text(MODEL)


def test_a_view_of_values_is_the_view_of_the_variant_they_make() -> None:
    # The dataset and the hindsight pairs write views from values, without rendering the
    # file; a proposer reads the view of the parsed parent: the two must agree.
    pairs = make_dataset(MODEL, 20, seed=3, fmt="edits", view=True)
    rng = random.Random(0)
    for _ in range(5):
        values = Refiner().sample_values(MODEL, rng)
        variant = parse_program(MODEL.render(values)[0].source, MODEL.grammar)  # resolved
        assert view_text(MODEL, values) == view_text(variant)
    assert all(pair.input.startswith("n_layer=") for pair in pairs)


def test_view_pairs_target_an_edit_script() -> None:
    names = [s.name for s in view_sites(MODEL)]
    for pair in make_dataset(MODEL, 50, seed=0, fmt="edits", view=True):
        edits, rejected = parse_edit_script(MODEL, pair.target)
        assert rejected is None
        assert {e.site: e.value for e in edits} == {
            e.site: e.value for e in pair.edits if e.site in names}
    script = full_script(MODEL)[0]
    for pair in make_dataset(MODEL, 50, seed=0, fmt="source", view=True):
        # Every numeric site, in the view's order; the values are the refined program's.
        assert [item.split("=")[0] for item in pair.target.split("; ")] == [
            item.split("=")[0] for item in script.split("; ")]
        edits, rejected = parse_edit_script(MODEL, pair.target)
        assert rejected is None
        moved = {e.site: e.value for e in pair.edits}
        assert {e.site: e.value for e in edits if e.site in moved} == {
            k: v for k, v in moved.items() if k in {e.site for e in edits}}
    again = make_dataset(MODEL, 50, seed=0, fmt="edits", view=True)
    assert again == make_dataset(MODEL, 50, seed=0, fmt="edits", view=True)  # seeded


def test_a_target_is_none_where_the_model_never_writes() -> None:
    values = MODEL.values
    moved = {**values, "mlp": "swiglu"}
    assert view_target(MODEL, values, moved, "edits") == "mlp=swiglu"
    assert view_target(MODEL, values, moved, "source") is None  # numeric sites only
    assert view_target(MODEL, values, values, "edits") is None


@pytest.mark.parametrize("fmt", ["source", "edits"])
def test_a_hundred_site_program_fits_the_limit_whatever_its_length(
        fmt: str, tmp_path: Path) -> None:
    text = _long_program(100, 300)
    program = parse_program(text, infer_grammar(text))
    assert len(program.proposable) == 100
    pairs = make_dataset(program, 256, seed=0, fmt=fmt, view=True)
    data = prepare_data(pairs, fmt, tmp_path / "view", 1024, view=1)
    assert data.view == 1 and data.mean_input_tokens <= MAX_TOKENS
    assert max(len(x) for x in json.loads(data.tokens_path.read_text())["input_ids"]) <= (
        MAX_TOKENS)
    # The whole file, as the paper's t5 reads it, is over the limit (and a longer file
    # has the same view: the test above).
    with pytest.raises(ConfigError, match="over the 1024 limit"):
        prepare_data(make_dataset(program, 2, seed=0, fmt=fmt), fmt, tmp_path / "src", 1024)


def test_a_bundles_view_lists_the_sites_of_every_file_in_the_grammars_order() -> None:
    lines = view_text(BUNDLE).splitlines()  # type: ignore[arg-type]
    assert [line.split("=")[0] for line in lines] == [
        "n_layer", "n_head", "n_embd", "block_size", "dropout", "bias", "learning_rate"]
    # each value as the file that owns it writes it: the config overrides the model file
    assert lines[0].startswith("n_layer=2 ") and lines[3].startswith("block_size=64 ")
    assert lines[6].startswith("learning_rate=1e-3 ")


@pytest.mark.parametrize("program", [TINY, MODEL, BUNDLE], ids=["tiny", "nanogpt", "bundle"])
@pytest.mark.parametrize("fmt", ["source", "edits"])
def test_constrained_walks_over_a_view_ground_on_the_parent(
        program: Program, fmt: str, tmp_path: Path) -> None:
    pairs = make_dataset(program, 300, seed=0, fmt=fmt, view=True)
    tok = train_tokenizer([t for p in pairs for t in (p.input, p.target)], 600)
    (tmp_path / "tokenizer.json").write_text(tok.to_str())
    # The sampler's own preparation and grounding; no worker runs (nothing samples).
    sampler = T5Sampler(object(), tmp_path / "tokenizer.json", TargetFormat(fmt),  # type: ignore[arg-type]
                        view=1)
    job = sampler.prepare(program)
    assert tok.decode(list(job.input_ids)) == view_text(program)
    assert job.constraint is not None
    automaton = ConstraintAutomaton(job.constraint)
    rng = random.Random(0)
    changed: set[str] = set()
    for _ in range(100):
        generated: list[int] = []
        for _step in range(job.max_new_tokens):
            token = rng.choice(automaton.allowed(generated))
            if token in (0, 2):
                break
            generated.append(token)
        text = tok.decode(generated)
        result = sampler.ground(program, text)
        # Grounded and inside every domain by construction; an invariant across sites
        # (nanoGPT's n_embd % n_head == 0) is the grammar's to check, as in the source
        # format of the whole file.
        assert result.outcome in (Outcome.OK, Outcome.INVARIANT), (text, result.reason)
        assert result.variant is not None
        # Written either way: a relative n_head domain holds few divisors of n_embd, so an
        # n_head edit is often refused by the invariant (the test flaked counting OK only).
        changed.update(e.site for e in result.variant.changes)
        if result.outcome is Outcome.INVARIANT:
            assert "n_embd % n_head" in result.reason
            continue
        if isinstance(program, Bundle):  # each edit written in the file that owns its site
            files = {p.path: p.text for p in program.programs}
            written = {path for path, text in result.variant.files or () if text != files[path]}
            assert written == {program.where(e.site) for e in result.variant.changes}
    numeric = {s.name for s in view_sites(program) if s.kind in NUMERIC_KINDS}
    assert numeric <= changed
    if fmt == "edits":  # structural sites are written by name
        assert {s.name for s in view_sites(program) if s.structural} <= changed


def test_a_t5_trained_on_views_records_it_and_proposes_from_a_view(tmp_path: Path) -> None:
    from deepphoenix.proposers import TrainSettings
    from deepphoenix.sandbox import Worker, WorkerSettings

    data = prepare_data(make_dataset(TINY, 64, seed=0, fmt="source", view=True), "source",
                        tmp_path / "data", 400, view=1)
    with Worker(WorkerSettings(threads=2), name="viewtest") as worker:
        trained, _ = T5Sampler.train(TINY.text, data, TrainSettings(epochs=1, seed=0), worker,
                                     out=tmp_path / "model")
        assert json.loads((tmp_path / "model" / "proposer.json").read_text())["view"] == 1
        loaded = T5Sampler.load(tmp_path / "model", worker)
        assert trained.view == loaded.view == 1
        assert loaded.read(TINY) == view_text(TINY)
        proposals = loaded.propose(TINY, 4, seed=1)
    assert len(proposals) == 4
    for proposal in proposals:
        assert proposal.mutation.outcome in (Outcome.OK, Outcome.DUPLICATE), proposal.text
        assert proposal.text.startswith("num_layers=")  # a full script, not a source


def test_hindsight_pairs_are_written_as_views(tmp_path: Path) -> None:
    from deepphoenix.proposers import HindsightProposer, Observation, ProposerContext
    from deepphoenix.proposers._tokenizer import load_tokenizer

    class NoLane:  # the rows are made in the parent; nothing runs in a worker
        def lane(self, name: str) -> object:
            return object()

    data = prepare_data(make_dataset(TINY, 64, seed=0, fmt="edits", view=True), "edits",
                        tmp_path / "data", 400, view=1)
    ctx = ProposerContext(run_dir=tmp_path, executor=NoLane(), seed=0, data=data)  # type: ignore[arg-type]
    proposer = HindsightProposer(ctx)
    base = TINY.values
    proposer.observe([
        Observation("p", "a", {**base, "d_ff": 512}, "scored", 3.0),
        Observation("p", "b", {**base, "d_ff": 1024, "num_heads": 8, "d_kv": 16}, "scored",
                    2.0)])
    rows = proposer.drawers[0].training.rows(data, TINY, seed=0)
    tokenizer = load_tokenizer(data.tokenizer_path)
    texts = {(tokenizer.decode(i), tokenizer.decode(o)) for i, o in rows}
    worse = view_text(TINY, {**base, "d_ff": 512})
    assert (worse, "d_ff=1024; num_heads=8") in texts
    assert all(not i.startswith("config") for i, _ in texts)  # views, never the source
