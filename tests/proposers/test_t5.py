"""End to end on CPU, offline: train the tiny seed's own T5 in a real worker for a few
seconds, then propose grounded, invariant-satisfying candidates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepphoenix.errors import CheckpointError, ConfigError
from deepphoenix.grammar import load_grammar
from deepphoenix.mutator import TargetFormat, ground, parse_program
from deepphoenix.outcome import Outcome
from deepphoenix.proposers import make_dataset
from deepphoenix.proposers._t5 import SampleSettings, T5Sampler, TrainSettings, prepare_data
from deepphoenix.sandbox import Worker, WorkerSettings
from deepphoenix.seeds import seed_source

T5 = load_grammar("t5")
REJECTIONS = {Outcome.UNPARSEABLE, Outcome.UNGROUNDED, Outcome.OUT_OF_DOMAIN, Outcome.INVARIANT,
              Outcome.NO_OP, Outcome.DUPLICATE}
TINY = parse_program(seed_source("tiny"), T5)


@pytest.fixture(scope="module")
def worker() -> Worker:
    w = Worker(WorkerSettings(threads=2), name="t5test")
    yield w
    w.close()


@pytest.fixture(scope="module", params=["source", "edits"])
def trained(request: pytest.FixtureRequest, worker: Worker,
            tmp_path_factory: pytest.TempPathFactory) -> tuple[T5Sampler, tuple, Path]:
    fmt = request.param
    folder = tmp_path_factory.mktemp(fmt)
    data = prepare_data(make_dataset(TINY, 256, seed=0, fmt=fmt), fmt, folder / "data", 400)
    progress: list[dict] = []
    proposer, report = T5Sampler.train(
        TINY.text, data, TrainSettings(epochs=2, batch_size=32, seed=0), worker,
        out=folder / "model", on_progress=progress.append)
    return proposer, (report, progress), folder / "model"


def test_training_reports_every_step_and_saves_a_checkpoint(trained) -> None:  # type: ignore[no-untyped-def]
    proposer, (report, progress), model_dir = trained
    assert report.steps == 16 and len(report.losses) == 16
    assert report.losses[-1] < report.losses[0]  # it learns something
    assert progress and progress[-1]["step"] == 16
    assert 0.3e6 < report.params < 2e6  # the tiny seed's model, vocab 400
    for name in ("model.safetensors", "config.json", "tokenizer.json", "source.py",
                 "losses.json", "proposer.json"):
        assert (model_dir / name).exists(), name
        # Readable by others: a copy of the run stays readable by the unprivileged workers
        assert (model_dir / name).stat().st_mode & 0o044 == 0o044, name
    assert (model_dir / "source.py").read_text() == TINY.text
    meta = json.loads((model_dir / "proposer.json").read_text())
    assert meta["format"] == proposer.format.value and meta["vocab_size"] == 400
    assert json.loads((model_dir / "losses.json").read_text()) == list(report.losses)


def test_constrained_candidates_are_grounded_and_valid(trained) -> None:  # type: ignore[no-untyped-def]
    proposer, _, _ = trained
    proposals = proposer.propose(TINY, 8, seed=1)
    assert len(proposals) == 8
    for p in proposals:
        assert p.mutation.outcome in (Outcome.OK, Outcome.DUPLICATE), p.mutation.reason
        assert p.mutation.variant is not None
        again = parse_program(p.mutation.variant.source, T5)
        assert T5.check(again.values, again.present).ok
    assert len({p.mutation.variant.hash for p in proposals if p.mutation.variant}) >= 2


def test_sampling_is_seeded(trained) -> None:  # type: ignore[no-untyped-def]
    proposer, _, _ = trained
    assert proposer.sample_texts(TINY, 4, seed=7) == proposer.sample_texts(TINY, 4, seed=7)


def test_unconstrained_outputs_are_grounded_or_rejected_with_a_reason(trained) -> None:  # type: ignore[no-untyped-def]
    proposer, _, _ = trained
    free = T5Sampler(proposer.worker, proposer.tokenizer_path, proposer.format,
                      proposer.model_dir, SampleSettings(constrained=False))
    for p in free.propose(TINY, 8, seed=2):
        if p.mutation.ok:
            assert p.mutation.variant is not None
            assert T5.check(p.mutation.variant.values, TINY.present).ok
        else:
            assert p.mutation.outcome in REJECTIONS and p.mutation.reason


def test_load_from_directory_in_a_fresh_worker(trained) -> None:  # type: ignore[no-untyped-def]
    proposer, _, model_dir = trained
    with Worker(WorkerSettings(threads=1), name="fresh") as other:
        loaded = T5Sampler.load(model_dir, other)
        assert loaded.format is proposer.format
        assert loaded.sample_texts(TINY, 3, seed=5) == proposer.sample_texts(TINY, 3, seed=5)


def test_load_rejects_non_models(tmp_path: Path, worker: Worker) -> None:
    with pytest.raises(CheckpointError, match="no such model directory"):
        T5Sampler.load(tmp_path / "nope", worker)
    with pytest.raises(CheckpointError, match=r"missing config\.json"):
        T5Sampler.load(tmp_path, worker)


def test_a_decoder_deeper_than_the_encoder_can_sample(worker: Worker, tmp_path: Path) -> None:
    # Regression: transformers 5 sized the generation cache by the encoder's depth.
    source = TINY.text.replace("num_layers = 2", "num_layers = 1").replace(
        "num_decoder_layers = 2", "num_decoder_layers = 3")
    program = parse_program(source, T5)
    data = prepare_data(make_dataset(program, 64, seed=0), "source", tmp_path / "data", 300)
    proposer, _ = T5Sampler.train(source, data, TrainSettings(epochs=1), worker)
    proposals = proposer.propose(program, 4, seed=0)
    assert all(p.mutation.outcome in (Outcome.OK, Outcome.DUPLICATE) for p in proposals)


class _Scripted(T5Sampler):
    """`sample_texts` replaced by a script of draws, one list per call: the resampling
    bookkeeping of `propose` without a model."""

    def __init__(self, draws: list[list[str]], rounds: int) -> None:
        self.format = TargetFormat.EDITS
        self.view = None  # writes edit scripts of the whole source's sites
        self.sampling = SampleSettings(rounds=rounds)
        self.draws = list(draws)
        self.seeds: list[int] = []
        self.last_seconds = 0.0
        self.last_draws = 0

    def prepare(self, parent):  # type: ignore[no-untyped-def]
        return {}

    def sample_texts(self, parent, n, seed, prepared=None):  # type: ignore[no-untyped-def]
        self.seeds.append(seed)
        self.last_seconds = 0.5
        return self.draws.pop(0)[:n]


def test_repeats_are_drawn_again_and_rejections_keep_their_slot() -> None:
    first = ["num_layers=3", "num_layers=3", "num_heads=99", "num_layers=3"]
    second = ["num_layers=3", "num_decoder_layers=5", "nonsense", "d_ff=512"]
    proposer = _Scripted([first, second], rounds=4)
    out = proposer.propose(TINY, 4, seed=11)
    assert [p.mutation.outcome for p in out] == [
        Outcome.OK, Outcome.OK, Outcome.OUT_OF_DOMAIN, Outcome.OK]  # the rejection kept its slot
    assert [p.text for p in out] == ["num_layers=3", "num_decoder_layers=5",
                                     "num_heads=99", "d_ff=512"]
    hashes = [p.mutation.variant.hash for p in out if p.mutation.ok and p.mutation.variant]
    assert len(set(hashes)) == 3
    assert proposer.seeds[0] == 11 and proposer.seeds[1] != 11  # a fresh, seeded draw
    assert proposer.last_draws == 8 and proposer.last_seconds == 1.0  # stopped: no repeats


def test_a_single_round_leaves_repeats_marked() -> None:
    proposer = _Scripted([["num_layers=3", "num_layers=3"]], rounds=1)
    out = proposer.propose(TINY, 2, seed=0)
    assert [p.mutation.outcome for p in out] == [Outcome.OK, Outcome.DUPLICATE]
    assert proposer.last_draws == 2


def test_rounds_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="rounds"):
        SampleSettings(rounds=0).validate()


def test_variants_to_exclude_count_as_repeats() -> None:
    first = ["num_layers=3", "d_ff=512"]
    excluded = ground(TINY, "num_layers=3", "edits").variant
    assert excluded is not None
    proposer = _Scripted([first, ["num_heads=8", "num_heads=2"]], rounds=2)
    out = proposer.propose(TINY, 2, seed=0, exclude={excluded.hash})
    assert [p.text for p in out] == ["num_heads=8", "d_ff=512"]
    once = _Scripted([first], rounds=1).propose(TINY, 2, seed=0, exclude={excluded.hash})
    assert once[0].mutation.outcome is Outcome.DUPLICATE
    assert "already evaluated" in once[0].mutation.reason
