"""One grammar over several files: a training script and the config that overrides it."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from deepphoenix.errors import SiteError, SourceError
from deepphoenix.grammar import load_grammar, parse_grammar
from deepphoenix.mutator import (
    Bundle,
    bundle_diff,
    bundle_text,
    is_bundle_text,
    parse_bundle,
    parse_candidate,
    parse_program,
    split_bundle,
)
from deepphoenix.outcome import Outcome
from deepphoenix.proposers import Refiner

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
    train = result.variant.file("nanogpt_train.py")
    config = result.variant.file("nanogpt_config.py")
    assert "n_layer = 8\n" in config and "n_layer = 12\n" in train
    assert "weight_decay = 0.05\n" in train
    assert "min_lr = 0.0002\n" in config  # derived from the merged learning rate
    for path, text in result.variant.files:  # each file still reads with the grammar
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
        edits = Refiner(2).draw_edits(bundle, rng)
        assert edits is not None
        result = bundle.apply(edits)
        if result.ok:
            accepted += 1
    assert accepted > 50


# -- a bundle is one candidate: one text, one hash (issue 32) -----------------------------

def test_a_bundle_text_reads_back_exactly() -> None:
    files = (("model.py", "x = 1\n"), ('dir/odd "name".py', "y = 2"),  # no final newline
             ("c.py", '# --- file "model.py" (6 characters) ---\nz = 3\n'))
    text = bundle_text(files)
    assert is_bundle_text(text) and split_bundle(text) == files
    assert split_bundle("x = 1\n") is None  # one file's text is that file
    assert bundle_text(files[:1]) == "x = 1\n"
    with pytest.raises(SourceError, match="cut or changed"):
        split_bundle(text[:-3])


def test_a_one_file_bundle_is_that_file() -> None:
    text = (FILES / "nanogpt_config.py").read_text(encoding="utf-8")
    program = parse_program(text, NANOGPT)
    bundle = parse_bundle([("nanogpt_config.py", text)], NANOGPT)
    assert (bundle.text, bundle.hash) == (program.text, program.hash)
    ours, theirs = bundle.apply({"n_layer": 8}), program.apply({"n_layer": 8})
    assert ours.variant is not None and theirs.variant is not None
    assert (ours.variant.source, ours.variant.hash) == (theirs.variant.source,
                                                        theirs.variant.hash)
    assert parse_candidate(ours.variant.source, NANOGPT).hash == ours.variant.hash


def test_a_bundle_of_several_files_has_one_hash() -> None:
    names = ("nanogpt_train.py", "nanogpt_config.py")
    bundle = _bundle(*names)
    hashes = {parse_program((FILES / n).read_text(encoding="utf-8"), NANOGPT, n).hash
              for n in names}
    assert bundle.hash not in hashes and len(bundle.hash) == 16
    reformatted = parse_bundle(
        [(n, (FILES / n).read_text(encoding="utf-8").replace("\n", "  # a comment\n", 1))
         for n in names], NANOGPT)
    assert reformatted.hash == bundle.hash  # formatting and comments do not name a variant
    result = bundle.apply({"n_layer": 8})
    assert result.ok and result.variant is not None
    assert result.variant.parent == bundle.hash and result.variant.hash != bundle.hash
    again = parse_candidate(result.variant.source, NANOGPT)
    assert isinstance(again, Bundle) and again.paths == names
    assert again.hash == result.variant.hash and again.values == dict(result.variant.values)
    rendered, _ = bundle.render(dict(result.variant.values))  # what lineage verify does
    assert rendered.source == result.variant.source
    diff = bundle_diff(bundle.text, result.variant.source, "a/seed", "b/x")
    assert "+++ b/x/nanogpt_config.py" in diff and "nanogpt_train.py" not in diff


def test_code_in_two_files_is_refused() -> None:
    text = (FILES / "nanogpt_model.py").read_text(encoding="utf-8")
    with pytest.raises(SiteError, match=r"is code in both model\.py .* and copy\.py"):
        parse_bundle([("model.py", text), ("copy.py", text)], NANOGPT)
    with pytest.raises(SiteError, match="named twice"):
        parse_bundle([("model.py", text), ("model.py", text)], NANOGPT)
