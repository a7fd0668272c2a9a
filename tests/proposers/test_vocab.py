"""The shared vocabulary: one tokenizer, shipped, that every view-reading proposer and
`proposer pretrain` read with; built offline from a recorded corpus, byte for byte."""

from __future__ import annotations

import json
import random
import re
import socket
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from deepphoenix.cli import cli
from deepphoenix.corpus import HELDOUT_FILES, TRAIN_FILES, read_corpus
from deepphoenix.engine import RunConfig, prepare_run_data
from deepphoenix.grammar import NUMERIC_KINDS, load_grammar
from deepphoenix.mutator import Program, TargetFormat, parse_program
from deepphoenix.outcome import Outcome
from deepphoenix.proposers import (
    MAX_TOKENS,
    T5Sampler,
    Vocabulary,
    build_vocabulary,
    make_dataset,
    shared_record,
    shared_tokenizer_path,
    view_sites,
    view_text,
)
from deepphoenix.proposers._constraint import ConstraintAutomaton
from deepphoenix.proposers._tokenizer import load_tokenizer, train_tokenizer
from deepphoenix.proposers._vocab import SEEDED_GRAMMARS, vocabulary_difference
from deepphoenix.seeds import seed_source

NANOGPT = Path(__file__).parents[1] / "grammar" / "files" / "nanogpt_model.py"
SHARED = load_tokenizer(shared_tokenizer_path())
PROGRAMS = [(f"{seed}/{grammar}", parse_program(seed_source(seed), load_grammar(grammar)))
            for seed, grammar in SEEDED_GRAMMARS]
PROGRAMS.append(("nanogpt_model.py/nanogpt",
                 parse_program(NANOGPT.read_text(), load_grammar("nanogpt"))))
TINY = PROGRAMS[1][1]
GPT = parse_program(seed_source("gpt"), load_grammar("gpt"))


def _view_texts(program: Program) -> list[str]:
    texts = [view_text(program)]
    for fmt in ("source", "edits"):
        texts += [t for p in make_dataset(program, 32, 7, fmt, view=True)
                  for t in (p.input, p.target)]
    return texts


@pytest.mark.parametrize(("name", "program"), PROGRAMS, ids=[n for n, _ in PROGRAMS])
def test_every_builtin_programs_view_is_short_under_the_shared_vocabulary(
        name: str, program: Program) -> None:
    """Whatever run the tokenizer comes from, a built-in program's view and its pairs take
    at most a third of their bytes (a BPE trained on another program's pairs spells them
    nearly byte by byte), far under the limit."""
    texts = _view_texts(program)
    counts = [len(encoding.ids) for encoding in SHARED.encode_batch(texts)]
    assert max(counts) <= MAX_TOKENS // 4, name
    assert sum(counts) * 3 <= sum(len(text.encode()) for text in texts), name


def test_a_tokenizer_of_one_programs_run_spells_another_nearly_byte_by_byte() -> None:
    """What the shared vocabulary fixes: the tiny seed's run BPE reads the GPT view."""
    tiny = train_tokenizer([t for p in make_dataset(TINY, 256, 0, view=True)
                            for t in (p.input, p.target)], 1024)
    view = view_text(GPT)
    assert len(tiny.encode(view).ids) * 2 > len(view.encode())
    assert len(SHARED.encode(view).ids) * 4 < len(view.encode())


@pytest.mark.parametrize(("name", "program"), PROGRAMS[2:], ids=[n for n, _ in PROGRAMS[2:]])
def test_values_in_a_view_start_and_end_on_token_boundaries(name: str,
                                                            program: Program) -> None:
    """Constrained decoding chooses inside literals: digit runs are tokens of their own."""
    text = view_text(program)
    encoding = SHARED.encode(text, add_special_tokens=False)
    starts = {s for s, _ in encoding.offsets}
    ends = {e for _, e in encoding.offsets}
    for match in re.finditer(r"[0-9]+", text):
        assert match.start() in starts and match.end() in ends, (name, match.group())


def _config(**overrides: object) -> RunConfig:
    return RunConfig(objective="score.py:evaluate", dataset_size=48, **overrides)


def test_runs_of_different_programs_read_with_the_same_shipped_vocabulary(
        tmp_path: Path) -> None:
    shipped = shared_tokenizer_path().read_bytes()
    tokenizers = []
    for name, program in (("tiny", TINY), ("gpt", GPT)):
        data = prepare_run_data(tmp_path / name, _config(), program, refinement=True,
                                view=True)
        assert data.proposer is not None
        assert data.proposer.tokenizer_path == tmp_path / name / "view" / "tokenizer.json"
        assert data.proposer.vocab_size == shared_record()["vocab_size"]
        tokenizers.append(data.proposer.tokenizer_path.read_bytes())
    assert tokenizers == [shipped, shipped]  # saved with each run, byte for byte


def test_a_run_may_train_its_own_and_an_old_run_keeps_its_own(tmp_path: Path) -> None:
    own = prepare_run_data(tmp_path, _config(vocabulary="run", vocab_size=400), TINY,
                           refinement=True, view=True)
    assert own.proposer is not None and own.proposer.vocab_size <= 400
    saved = own.proposer.tokenizer_path.read_bytes()
    assert saved != shared_tokenizer_path().read_bytes()
    # A run directory written before the shared vocabulary (its config has no
    # `vocabulary`) resumes with the tokenizer it saved.
    again = prepare_run_data(tmp_path, _config(), TINY, refinement=True, view=True)
    assert again.proposer == own.proposer
    assert again.proposer.tokenizer_path.read_bytes() == saved


def test_whole_source_pairs_still_train_their_own_tokenizer(tmp_path: Path) -> None:
    """The paper's t5 reads whole sources with a BPE of its own pairs."""
    data = prepare_run_data(tmp_path, _config(vocab_size=400), TINY, refinement=True)
    assert data.proposer is not None and data.proposer.view is None
    assert data.proposer.vocab_size <= 400


@pytest.fixture(scope="module")
def built() -> Vocabulary:
    """The vocabulary built here, with every socket refused (nothing is downloaded)."""
    connect = socket.socket.connect

    def refuse(*_args: object) -> None:
        raise OSError("no network in this test")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    try:
        return build_vocabulary()
    finally:
        socket.socket.connect = connect  # type: ignore[method-assign]


def _same_corpus(record: dict[str, object]) -> bool:
    import tokenizers

    here = read_corpus((*TRAIN_FILES, *HELDOUT_FILES)).manifest
    return (record["stdlib"] == here and record["tokenizers"] == tokenizers.__version__
            and record["python"] == ".".join(map(str, sys.version_info[:3])))


def test_the_shipped_vocabulary_is_what_the_build_command_builds(built: Vocabulary,
                                                                 tmp_path: Path) -> None:
    record = shared_record()
    if not _same_corpus(record):
        pytest.skip(f"the vocabulary was built with Python {record['python']} and "
                    f"tokenizers {record['tokenizers']} (another standard library)")
    assert vocabulary_difference(built) is None, "rebuild it: deepphoenix proposer vocab"
    assert built.record == record
    result = CliRunner().invoke(cli, ["proposer", "vocab", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tokenizer.json").read_bytes() == shared_tokenizer_path().read_bytes()
    assert json.loads((tmp_path / "record.json").read_text()) == record


def test_a_vocabulary_that_differs_is_named_with_what_differs(built: Vocabulary,
                                                              tmp_path: Path) -> None:
    stale = Vocabulary(built.tokenizer, {**built.record, "views_sha256": "0" * 64})
    (tmp_path / "tokenizer.json").write_text(built.text.replace('"<unk>"', '"<UNK>"', 1))
    (tmp_path / "record.json").write_text(json.dumps(stale.record))
    difference = vocabulary_difference(built, tmp_path)
    assert difference is not None and "views_sha256" in difference
    assert vocabulary_difference(built, tmp_path / "missing") is not None


@pytest.mark.parametrize("fmt", ["source", "edits"])
@pytest.mark.parametrize(("name", "program"), [("gpt/gpt", GPT), PROGRAMS[-1]],
                         ids=["gpt", "nanogpt"])
def test_constrained_walks_under_the_shared_vocabulary_ground_on_the_parent(
        name: str, program: Program, fmt: str) -> None:
    """The T5's constraint over a view, built on the shared tokenizer: any walk through it
    is grounded inside every domain, and the walks reach every numeric site."""
    sampler = T5Sampler(object(), shared_tokenizer_path(), TargetFormat(fmt),  # type: ignore[arg-type]
                        view=1)
    job = sampler.prepare(program)
    assert SHARED.decode(list(job.input_ids)) == view_text(program)
    assert job.constraint is not None
    automaton = ConstraintAutomaton(job.constraint)
    rng = random.Random(0)
    changed: set[str] = set()
    for _ in range(60):
        generated: list[int] = []
        for _step in range(job.max_new_tokens):
            token = rng.choice(automaton.allowed(generated))
            if token in (0, 2):
                break
            generated.append(token)
        result = sampler.ground(program, SHARED.decode(generated))
        assert result.outcome in (Outcome.OK, Outcome.INVARIANT), (name, result.reason)
        assert result.variant is not None
        changed.update(e.site for e in result.variant.changes)
    assert {s.name for s in view_sites(program) if s.kind in NUMERIC_KINDS} <= changed
