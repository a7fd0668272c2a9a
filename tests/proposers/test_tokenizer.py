from __future__ import annotations

from pathlib import Path

import pytest

from deepphoenix.errors import CheckpointError, ConfigError
from deepphoenix.grammar import load_grammar
from deepphoenix.mutator import parse_program
from deepphoenix.proposers import make_dataset
from deepphoenix.proposers._tokenizer import load_tokenizer, train_tokenizer
from deepphoenix.seeds import seed_source

T5 = load_grammar("t5")
PAPER = parse_program(seed_source("paper"), T5)
TEXTS = [t for p in make_dataset(PAPER, 300, seed=0) for t in (p.input, p.target)]


def test_special_ids_are_codet5s_and_encodings_end_with_eos() -> None:
    tok = train_tokenizer(TEXTS, 512)
    assert [tok.token_to_id(t) for t in ("<pad>", "<s>", "</s>", "<unk>")] == [0, 1, 2, 3]
    ids = tok.encode(PAPER.text).ids
    assert ids[-1] == 2
    assert tok.decode(ids) == PAPER.text  # byte-level: lossless
    assert tok.get_vocab_size() == 512


def test_training_is_deterministic() -> None:
    assert train_tokenizer(TEXTS, 600).to_str() == train_tokenizer(TEXTS, 600).to_str()


def test_digit_runs_start_and_end_on_token_boundaries() -> None:
    tok = train_tokenizer(TEXTS, 512, "digits")
    encoding = tok.encode(PAPER.text, add_special_tokens=False)
    starts = {s for s, _ in encoding.offsets}
    ends = {e for _, e in encoding.offsets}
    for site in PAPER.sites:
        assert site.start in starts and site.end in ends, site.name
    merged = train_tokenizer(TEXTS, 512, "none").encode(PAPER.text, add_special_tokens=False)
    assert len(merged.ids) < len(encoding.ids)  # the whole-text BPE is shorter but mixes


def test_save_and_load(tmp_path: Path) -> None:
    tok = train_tokenizer(TEXTS, 512)
    tok.save(str(tmp_path / "tokenizer.json"))
    again = load_tokenizer(tmp_path)
    assert again.encode(PAPER.text).ids == tok.encode(PAPER.text).ids
    with pytest.raises(CheckpointError, match="no tokenizer"):
        load_tokenizer(tmp_path / "missing")


def test_vocab_too_small() -> None:
    with pytest.raises(ConfigError, match="vocab_size=100"):
        train_tokenizer(TEXTS, 100)
