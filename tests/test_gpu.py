"""CUDA checks, off by default: `python -m pytest -m gpu` on a machine with a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepphoenix.evaluator import EvalSettings, EvalStatus, Evaluator
from deepphoenix.executor import ExecutorSettings, LocalExecutor
from deepphoenix.grammar import load_grammar
from deepphoenix.mutator import parse_program
from deepphoenix.outcome import Outcome
from deepphoenix.proposers import make_dataset
from deepphoenix.proposers._t5 import T5Sampler, TrainSettings, prepare_data
from deepphoenix.sandbox import Worker, WorkerSettings
from deepphoenix.seeds import seed_source

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module", autouse=True)
def _needs_cuda() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")


@pytest.mark.parametrize("device", ["cuda", "auto"])
@pytest.mark.parametrize("seed_name", ["tiny", "paper"])
def test_fewshot_scoring_on_cuda(device: str, seed_name: str, tmp_path: Path) -> None:
    program = parse_program(seed_source(seed_name), load_grammar("t5"))
    data = prepare_data(make_dataset(program, 256, seed=0), "source", tmp_path, 1024)
    settings = ExecutorSettings(worker=WorkerSettings(device=device))
    with LocalExecutor(settings) as executor:
        evaluator = Evaluator(executor, EvalSettings(rows=data.tokens_path,
                                                     vocab_size=data.vocab_size, samples=256))
        (result,) = list(evaluator.evaluate([(program.hash, program.text)]))
    assert result.status is EvalStatus.SCORED, result.reason
    assert result.metrics["device"] == "cuda"
    assert result.metrics["peak_memory_kind"] == "cuda allocated"
    assert result.metrics["peak_memory"] > 0 and result.score is not None


def test_proposer_trains_with_bf16_and_samples_on_cuda(tmp_path: Path) -> None:
    program = parse_program(seed_source("tiny"), load_grammar("t5"))
    data = prepare_data(make_dataset(program, 512, seed=0), "source", tmp_path, 1024)
    with Worker(WorkerSettings(device="cuda")) as worker:
        proposer, report = T5Sampler.train(
            program.text, data, TrainSettings(epochs=2), worker)
        assert report.device == "cuda" and report.losses[-1] < report.losses[0]
        proposals = proposer.propose(program, 8, seed=0)
    assert all(p.mutation.outcome in (Outcome.OK, Outcome.DUPLICATE) for p in proposals)
