"""Long checks, off by default: `python -m pytest -m slow` (about 15 minutes on 2 cores)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from deepphoenix.cli import cli
from deepphoenix.grammar import load_grammar
from deepphoenix.mutator import parse_program
from deepphoenix.outcome import Outcome
from deepphoenix.proposers import make_dataset
from deepphoenix.proposers._t5 import T5Sampler, TrainSettings, prepare_data
from deepphoenix.sandbox import Worker, WorkerSettings
from deepphoenix.seeds import seed_source

pytestmark = pytest.mark.slow


def test_default_run_improves_on_its_seed(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "--run-dir", str(tmp_path / "run")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["best_loss"] < summary["seed_loss"]
    assert summary["seconds"] < 600


@pytest.mark.parametrize("fmt", ["source", "edits"])
def test_validity_target_after_at_most_five_minutes(fmt: str, tmp_path: Path) -> None:
    """Issue target: >= 95% of sampled candidates grounded and valid, >= 4 distinct of 8,
    with the default (constrained) decoding. Validity holds by construction there (the
    constraint tests prove it); what this test can fail on is the trained model: sampling
    within its time budget, and distinctness, which needs a model that spreads its mass."""
    parent = parse_program(seed_source("tiny"), load_grammar("t5"))
    data = prepare_data(make_dataset(parent, 4096, seed=0, fmt=fmt), fmt, tmp_path, 1024)
    with Worker(WorkerSettings(threads=os.cpu_count() or 1)) as worker:
        proposer, _ = T5Sampler.train(
            parent.text, data, TrainSettings(epochs=1000, max_seconds=270),
            worker)
        valid = total = 0
        for seed in range(10):
            proposals = proposer.propose(parent, 8, seed=seed)
            total += len(proposals)
            ok = [p for p in proposals if p.mutation.outcome in (Outcome.OK, Outcome.DUPLICATE)]
            valid += len(ok)
            assert len({p.mutation.variant.hash for p in ok if p.mutation.variant}) >= 4
    assert valid / total >= 0.95
