"""One grammar over several files: a training script and the config that overrides it."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from deepphoenix.errors import SiteError
from deepphoenix.grammar import load_grammar, parse_grammar
from deepphoenix.mutator import parse_bundle, parse_program
from deepphoenix.outcome import Outcome
from deepphoenix.proposers import RandomProposer

FILES = Path(__file__).parent.parent / "grammar" / "files"
NANOGPT = load_grammar("nanogpt")


def _bundle(*names: str):  # type: ignore[no-untyped-def]
    return parse_bundle([(n, (FILES / n).read_text(encoding="utf-8")) for n in names], NANOGPT)


def test_later_files_override_earlier_ones() -> None:
    bundle = _bundle("nanogpt_train.py", "nanogpt_config.py")
    assert bundle.values["n_layer"] == 6 and bundle.where("n_layer") == "nanogpt_config.py"
    assert bundle.values["weight_decay"] == 0.1  # only the script sets it
    assert bundle.where("weight_decay") == "nanogpt_train.py"
    assert bundle.check().ok


def test_edits_go_to_the_file_that_owns_the_site() -> None:
    bundle = _bundle("nanogpt_train.py", "nanogpt_config.py")
    result = bundle.apply({"n_layer": 8, "weight_decay": 0.05, "learning_rate": 2e-3})
    assert result.ok and result.variant is not None
    train = result.variant.source("nanogpt_train.py")
    config = result.variant.source("nanogpt_config.py")
    assert "n_layer = 8\n" in config and "n_layer = 12\n" in train
    assert "weight_decay = 0.05\n" in train
    assert "min_lr = 0.0002\n" in config  # derived from the merged learning rate
    for path, text in result.variant.sources:  # each file still reads with the grammar
        parse_program(text, NANOGPT, path)


def test_invariants_relate_sites_of_different_files() -> None:
    grammar = parse_grammar("""
invariants = ["n_embd % n_head == 0"]
[sites.n_embd]
select = "field:GPTConfig.n_embd"
kind = "int"
min = 64
max = 2048
[sites.n_head]
select = "name:n_head"
kind = "int"
min = 1
max = 16
""")
    files = [(n, (FILES / n).read_text(encoding="utf-8"))
             for n in ("nanogpt_model.py", "nanogpt_config.py")]
    bundle = parse_bundle(files, grammar)
    assert bundle.values == {"n_embd": 768, "n_head": 6}
    assert bundle.apply({"n_head": 7}).outcome is Outcome.INVARIANT
    assert bundle.apply({"n_head": 8}).ok
    with pytest.raises(SiteError, match="in none of"):
        parse_bundle(files[1:], grammar)


def test_random_moves_over_a_bundle_stay_valid() -> None:
    bundle = _bundle("nanogpt_model.py", "nanogpt_config.py")
    rng = random.Random(3)
    accepted = 0
    for _ in range(100):
        edits = RandomProposer(2).draw_edits(bundle, rng)
        assert edits is not None
        result = bundle.apply(edits)
        if result.ok:
            accepted += 1
    assert accepted > 50
