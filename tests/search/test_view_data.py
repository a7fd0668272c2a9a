"""A run's data for a view-reading proposer: `learned` trains on program views kept in
``data/view/``, the paper's `t5` on whole sources and fails fast when a source is too long
for it, a run written before views resumes reading sources, and pretraining reads views."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from deepphoenix.cli import cli
from deepphoenix.engine import RunConfig, prepare_run_data, pretraining_pairs
from deepphoenix.errors import RunDirError
from deepphoenix.grammar import load_grammar
from deepphoenix.mutator import infer_grammar, parse_program
from deepphoenix.proposers import view_text
from deepphoenix.seeds import seed_source
from tests.proposers.test_view import _long_program

LEGACY = Path(__file__).parent.parent / "fixtures" / "legacy_v1" / "partial"
TINY = parse_program(seed_source("tiny"), load_grammar("t5"))
OBJECTIVE = "def evaluate(program, ctx):\n    return 1.0\n"


def _one_line_error(output: str, exit_code: int, *needles: str) -> None:
    assert exit_code == 1, output
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1, output
    for needle in needles:
        assert needle in output, output


def test_t5_on_a_source_too_long_for_it_fails_before_the_dataset(tmp_path: Path) -> None:
    (tmp_path / "long.py").write_text(_long_program(20, 300))
    (tmp_path / "score.py").write_text(OBJECTIVE)
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(cli, [
        "run", "--source", str(tmp_path / "long.py"), "--grammar", "infer", "--objective",
        f"{tmp_path / 'score.py'}:evaluate", "--proposer", "t5", "--run-dir", str(run_dir),
        "--quiet", "--no-plots"])
    _one_line_error(result.output, result.exit_code, "proposer 't5' reads the whole source",
                    "--proposer learned")
    assert not (run_dir / "data" / "pairs.jsonl").exists()  # no dataset was made


def test_a_file_too_large_even_as_a_view_fails_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "many.py").write_text(_long_program(240, 0))  # 240 sites: ~2,000 tokens
    (tmp_path / "score.py").write_text(OBJECTIVE)
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(cli, [
        "run", "--source", str(tmp_path / "many.py"), "--grammar", "infer", "--objective",
        f"{tmp_path / 'score.py'}:evaluate", "--proposer", "learned", "--run-dir",
        str(run_dir), "--quiet", "--no-plots"])
    _one_line_error(result.output, result.exit_code, "the program view is",
                    "over the 1024 limit", "give it fewer")
    assert not (run_dir / "data" / "view" / "pairs.jsonl").exists()  # before any dataset


def test_learned_reads_views_of_the_same_source(tmp_path: Path) -> None:
    text = _long_program(20, 300)
    program = parse_program(text, infer_grammar(text))
    config = RunConfig(objective="score.py:evaluate", dataset_size=64)
    data = prepare_run_data(tmp_path, config, program, refinement=True, view=True)
    assert data.proposer is not None and data.proposer.view == 1
    assert data.proposer.tokens_path == tmp_path / "view" / "tokens.json"
    first = json.loads((tmp_path / "view" / "pairs.jsonl").read_text().splitlines()[0])
    assert first["input"].splitlines()[0].startswith("block_0_hidden_width=")
    assert len(first["input"].splitlines()) == 20
    assert not (tmp_path / "pairs.jsonl").exists()  # a user objective needs no task rows
    again = prepare_run_data(tmp_path, config, program, refinement=True, view=True)
    assert again.proposer == data.proposer  # read back, not made again


def test_the_refinement_task_keeps_its_source_pairs_beside_the_view(tmp_path: Path) -> None:
    config = RunConfig(dataset_size=64, fewshot_samples=32)
    data = prepare_run_data(tmp_path, config, TINY, refinement=True, view=True)
    assert data.proposer is not None and data.proposer.view == 1
    assert data.rows == tmp_path / "tokens.json"  # candidates still learn whole sources
    task = json.loads((tmp_path / "data.json").read_text())
    assert task.get("view") is None
    assert data.vocab_size == task["vocab_size"]
    first = json.loads((tmp_path / "pairs.jsonl").read_text().splitlines()[0])
    assert "T5ForConditionalGeneration(config)" in first["input"]  # the whole source


def test_a_run_written_before_views_keeps_reading_sources(tmp_path: Path) -> None:
    config = RunConfig(dataset_size=64, fewshot_samples=32)
    old = prepare_run_data(tmp_path, config, TINY, refinement=True)  # as a run wrote them
    assert old.proposer is not None and old.proposer.view is None
    resumed = prepare_run_data(tmp_path, config, TINY, refinement=True, view=True)
    assert resumed.proposer == old.proposer
    assert not (tmp_path / "view").exists()


def test_view_data_of_another_version_is_refused(tmp_path: Path) -> None:
    config = RunConfig(dataset_size=64, fewshot_samples=32)
    prepare_run_data(tmp_path, config, TINY, refinement=True, view=True)
    meta = tmp_path / "view" / "data.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "view": 99}))
    with pytest.raises(RunDirError, match="program view version 99"):
        prepare_run_data(tmp_path, config, TINY, refinement=True, view=True)


def test_pretraining_pairs_are_views(tmp_path: Path) -> None:
    run_dir = tmp_path / "earlier"
    shutil.copytree(LEGACY, run_dir)  # a finished run's database, read, never written
    pairs, runs = pretraining_pairs([run_dir], "edits", seed=0)
    assert runs[0].hindsight > 0
    for pair in pairs:
        assert [line.split("=")[0] for line in pair.input.splitlines()] == [
            "num_layers", "num_decoder_layers", "d_ff", "num_heads"]
        assert "import" not in pair.input and ";" not in pair.input
    assert pairs[0].input != view_text(TINY) or pairs[1].input != view_text(TINY)


def test_a_pretrained_model_that_reads_sources_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        (model / name).write_text("{}")
    (model / "proposer.json").write_text(json.dumps({"format": "source", "vocab_size": 400}))
    result = CliRunner().invoke(cli, ["run", "--preset", "smoke", "--proposer-init",
                                      str(model), "--run-dir", str(tmp_path / "run")])
    _one_line_error(result.output, result.exit_code, "reads whole sources",
                    "proposer pretrain")
    assert not (tmp_path / "run" / "run.sqlite").exists()
