"""Runs of the learned proposer's baselines and ablations, and transfer across runs:
`gp` killed with -9 resumes to the same result; `proposer pretrain` on earlier runs and
`run --proposer-init`; bad input to either gets one line and a non-zero exit."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

from deepphoenix.cli import cli
from deepphoenix.errors import ConfigError
from deepphoenix.proposers import shared_tokenizer_path
from deepphoenix.store import RunStore
from tests.search.test_run import _spawn, _variants, _wait_for


def _one_line_error(result: object, *needles: str) -> None:
    output = result.output  # type: ignore[attr-defined]
    assert result.exit_code == 1, output  # type: ignore[attr-defined]
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1, output
    for needle in needles:
        assert needle in output, output


def test_proposer_init_that_is_not_a_proposer_gets_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    result = CliRunner().invoke(cli, ["run", "--preset", "smoke", "--proposer-init",
                                      str(folder), "--run-dir", str(tmp_path / "run")])
    _one_line_error(result, "not a deepphoenix model", "proposer.json")
    assert not (tmp_path / "run" / "run.sqlite").exists()  # refused before the run exists
    result = CliRunner().invoke(cli, ["run", "--preset", "smoke", "--proposer", "tpe",
                                      "--proposer-init", str(folder),
                                      "--run-dir", str(tmp_path / "run2")])
    _one_line_error(result, "--proposer-init", "'tpe'")


def test_pretraining_on_a_folder_that_is_not_a_run_gets_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["proposer", "pretrain", str(tmp_path),
                                      "--out", str(tmp_path / "model")])
    _one_line_error(result, "not a deepphoenix run directory")
    assert not (tmp_path / "model").exists()
    result = CliRunner().invoke(cli, ["proposer", "pretrain", str(tmp_path / "missing"),
                                      "--out", str(tmp_path / "model")])
    _one_line_error(result, "no such run directory")


@pytest.mark.slow
def test_pretrain_on_earlier_runs_then_start_a_run_from_it(tmp_path: Path) -> None:
    runner = CliRunner()
    earlier = tmp_path / "earlier"
    result = runner.invoke(cli, ["run", "--preset", "smoke", "--proposer", "random",
                                 "--run-dir", str(earlier), "--no-plots", "--quiet"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    model = tmp_path / "model"
    result = runner.invoke(cli, ["proposer", "pretrain", str(earlier), "--out", str(model),
                                 "--epochs", "1", "--json"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index('{\n  "model"'):])
    # pretrained with the shared vocabulary, which every learned run reads with
    assert (model / "tokenizer.json").read_bytes() == (
        shared_tokenizer_path().read_bytes())
    assert summary["hindsight"] > 0 and summary["pairs"] > summary["hindsight"]
    provenance = json.loads((model / "pretrain.json").read_text())
    assert provenance["runs"][0]["run_dir"] == str(earlier)
    # a run of another seed, started from the pretrained model
    run_dir = tmp_path / "warm"
    result = runner.invoke(cli, ["run", "--preset", "smoke", "--seed", "7", "--episodes", "1",
                                 "--batches", "1", "--proposer-init", str(model),
                                 "--run-dir", str(run_dir), "--no-plots", "--quiet"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    copy = run_dir / "data" / "proposer-init"
    assert (copy / "proposer.json").exists()
    assert (run_dir / "data" / "view" / "tokenizer.json").read_text() == (
        model / "tokenizer.json").read_text()  # the run reads its views with the model's
    assert json.loads((model / "proposer.json").read_text())["view"] == 1
    with RunStore.open(run_dir) as store:
        episode = store.episode(1)
        attempts = store.attempts()
    assert episode is not None and episode["training"]["warm_start"] == str(copy)
    assert {a.proposer for a in attempts} == {"learned"}


@pytest.mark.slow
def test_a_gp_run_killed_with_9_resumes_to_the_same_result(tmp_path: Path) -> None:
    # the seed and 3 batches of 3 are GPSampler's 10 random trials; the 4th batch is the
    # GP's, and the kill lands in it
    args = ["run", "--preset", "smoke", "--proposer", "gp", "--episodes", "1", "--batches",
            "4", "--candidates", "3", "--json", "--no-plots"]
    reference = tmp_path / "reference"
    done = _spawn([*args, "--run-dir", str(reference)], tmp_path)
    _, err = done.communicate(timeout=900)
    assert done.returncode == 0, err
    run_dir = tmp_path / "killed"
    proc = _spawn([*args, "--run-dir", str(run_dir)], tmp_path)
    _wait_for(run_dir, 11, proc)  # into the GP's batch
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    resumed = _spawn(["run", "--run-dir", str(run_dir), "--resume", "--json"], tmp_path)
    _out, err = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, err
    assert _variants(run_dir) == _variants(reference)
    assert len(_variants(reference)) >= 12
    with RunStore.open(reference) as store:
        assert {a.proposer for a in store.attempts()} == {"gp"}


def test_a_pretrained_tokenizer_that_cannot_read_the_program_says_so(tmp_path: Path) -> None:
    """A --proposer-init model's BPE, trained on other programs, may spell this program in
    too many tokens: the error names the model's tokenizer, not the seed or vocabulary."""
    from deepphoenix.proposers import RefinementPair, prepare_data
    from deepphoenix.proposers._tokenizer import train_tokenizer

    foreign = train_tokenizer(["lr = 0.001\nsteps = 200\n"] * 8, 300)
    path = tmp_path / "tokenizer.json"
    path.write_text(foreign.to_str())
    program = "".join(f"layer_{i}_width = {i * 37}  # widths\n" for i in range(200))
    pair = RefinementPair(program, program, ())
    with pytest.raises(ConfigError, match=r"--proposer-init model.*over the 1024 limit"):
        prepare_data([pair], "source", tmp_path / "data", tokenizer_from=path)
    with pytest.raises(ConfigError, match="use a shorter seed source"):
        prepare_data([pair], "source", tmp_path / "cold", vocab_size=300)


def test_the_builtin_pairs_cover_every_built_in_seed_in_the_view() -> None:
    from deepphoenix.engine import BUILTIN_PROGRAMS, builtin_pairs
    from deepphoenix.seeds import seed_names

    pairs, programs = builtin_pairs("edits", seed=3, per_program=4)
    assert {p.seed for p in programs} == set(seed_names())  # every built-in program
    assert not {p.grammar for p in programs} & {"nanogpt", "resnet", "llama"}  # never seen
    assert len(pairs) == 4 * len(BUILTIN_PROGRAMS) and all(p.sites for p in programs)
    assert all("\n" in pair.input and "=" in pair.input for pair in pairs)  # views
    again, _ = builtin_pairs("edits", seed=3, per_program=4)
    assert [p.to_dict() for p in again] == [p.to_dict() for p in pairs]  # reproducible


def test_pretraining_needs_runs_or_builtin(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["proposer", "pretrain", "--out", str(tmp_path / "m")])
    _one_line_error(result, "RUN_DIRS", "--builtin")
    assert not (tmp_path / "m").exists()


def test_builtin_init_resolves_to_the_cache_and_says_how_to_build_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deepphoenix.engine import CACHE_ENV, builtin_init_dir, resolve_init

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert builtin_init_dir("edits") == tmp_path / "cache" / "pretrained" / "edits"
    assert resolve_init(str(tmp_path), "edits") == tmp_path
    with pytest.raises(ConfigError, match="proposer pretrain --builtin --format edits"):
        resolve_init("builtin", "edits")  # not built on this machine: one line says how
    result = CliRunner().invoke(cli, ["run", "--preset", "smoke", "--format", "edits",
                                      "--proposer-init", "builtin",
                                      "--run-dir", str(tmp_path / "run")])
    _one_line_error(result, "no built-in pretrained proposer for --format edits")
    assert not (tmp_path / "run" / "run.sqlite").exists()


@pytest.mark.slow
def test_a_run_starts_from_the_builtin_proposer_built_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deepphoenix.engine import CACHE_ENV, builtin_init_dir

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    runner = CliRunner()
    result = runner.invoke(cli, ["proposer", "pretrain", "--builtin", "--per-program", "8",
                                 "--epochs", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    folder = builtin_init_dir("source")
    provenance = json.loads((folder / "pretrain.json").read_text())
    assert provenance["format"] == "source" and provenance["command"][:4] == [
        "deepphoenix", "proposer", "pretrain", "--builtin"]
    assert {p["seed"] for p in provenance["builtin"]} >= {"tiny", "gpt", "quine-coords"}
    run_dir = tmp_path / "warm"
    result = runner.invoke(cli, [
        "run", "--preset", "smoke", "--episodes", "1", "--batches", "1",
        "--proposer-init", "builtin", "--run-dir", str(run_dir), "--no-plots", "--quiet"],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads((run_dir / "data" / "proposer-init" / "pretrain.json").read_text())[
        "builtin"]
    assert json.loads((run_dir / "config.json").read_text())["proposer_init"] == "builtin"


def test_the_runs_copy_of_its_init_model_is_readable_by_its_workers(tmp_path: Path) -> None:
    from deepphoenix.engine._rundir import _copy_init

    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights")
    (model / "model.safetensors").chmod(0o600)  # as a sandbox worker saves it
    _copy_init(model, tmp_path / "run" / "data" / "proposer-init")
    copy = tmp_path / "run" / "data" / "proposer-init" / "model.safetensors"
    assert copy.read_bytes() == b"weights" and copy.stat().st_mode & 0o777 == 0o644
