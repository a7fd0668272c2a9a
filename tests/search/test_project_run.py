"""Searching a project, not a file (issue 32): a model file and a config as one candidate,
the project's own training command as the objective, every lineage command and a kill -9
resume over bundles, and bad input refused in one line before anything runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import deepphoenix
from deepphoenix.cli import cli
from deepphoenix.mutator import split_bundle
from deepphoenix.store import RunStore
from tests.search.project import COMMAND, METRIC, run_args, write_project
from tests.search.test_run import _evaluated_hashes, _spawn, _wait_for

GRAMMAR_FILES = Path(__file__).parent.parent / "grammar" / "files"


def _scores(run_dir: Path) -> list[tuple[str, str, float | None]]:
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        return [(h, s, None if x is None else round(x, 6)) for h, s, x in db.execute(
            "SELECT hash, status, score FROM variants ORDER BY hash")]


@pytest.fixture(scope="module")
def project_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("project")
    project = write_project(root / "nanogpt")
    run_dir = root / "runs" / "x"
    result = CliRunner().invoke(cli, [*run_args(project), "--run-dir", str(run_dir)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "best files:" in result.output
    return project, run_dir


def test_a_model_file_and_its_config_are_one_candidate(project_run) -> None:  # type: ignore[no-untyped-def]
    project, run_dir = project_run
    with RunStore.open(run_dir) as store:
        variants = store.variants()
        objective = store.objective
        attempts = store.attempts()
    assert objective["name"] == COMMAND and objective["metric"] == METRIC
    assert len(variants) == 5 and all(v.status == "scored" for v in variants)
    owners = {"block_size": "model.py", "bias": "model.py", "n_layer": "config/train_small.py",
              "dropout": "config/train_small.py", "learning_rate": "config/train_small.py"}
    seed_files = dict(split_bundle(variants[0].source) or ())
    assert set(seed_files) == {"model.py", "config/train_small.py"}
    changed_files = set()
    sources = {v.hash: dict(split_bundle(v.source) or ()) for v in variants}
    for attempt in attempts:
        files, parent = sources[str(attempt.child)], sources[attempt.parent]
        changed = {p for p in files if files[p] != parent[p]}
        assert changed == {owners[e["site"]] for e in attempt.edits}  # the owner's file only
        changed_files |= changed
    assert changed_files == {"model.py", "config/train_small.py"}
    seed = variants[0].metrics
    # steps 0, 2, 4, 6 as the script prints them; the last is the score
    assert [step for step, _ in seed["reports"]] == [0, 2, 4, 6]
    assert variants[0].score == seed["reports"][-1][1]
    # the workspace: no .git, the big file linked, one thread, the project untouched
    assert "git False, data linked True, threads 1" in seed["output_tail"]
    assert f": {2 << 20} bytes read" in seed["output_tail"]  # readable through the link
    assert not (project / "out-small").exists()


def test_every_lineage_command_reads_a_bundle(project_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    project, run_dir = project_run
    runner = CliRunner()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["best_path"] == str(run_dir / "best")
    shown = runner.invoke(cli, ["lineage", "show", str(run_dir), "--json"])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["path"][0]["hash"] == summary[
        "seed_hash"]
    verified = runner.invoke(cli, ["lineage", "verify", str(run_dir)])
    assert verified.exit_code == 0
    assert "5 stored sources re-rendered and scores checked, 0 mismatches" in verified.stdout
    printed = runner.invoke(cli, ["lineage", "best", str(run_dir)])
    assert printed.exit_code == 1 and "write them with --out DIR" in printed.stderr
    assert len(printed.stderr.strip().splitlines()) == 1
    # the best bundle, written out, runs with the same command where the project is
    copy = tmp_path / "copy"
    shutil.copytree(project, copy)
    out = runner.invoke(cli, ["lineage", "best", str(run_dir), "--out", str(tmp_path / "b")])
    assert out.exit_code == 0, out.output
    for rel in ("model.py", "config/train_small.py"):
        assert (tmp_path / "b" / rel).read_text() == (run_dir / "best" / rel).read_text()
        shutil.copy(tmp_path / "b" / rel, copy / rel)
    again = runner.invoke(cli, ["lineage", "best", str(run_dir), "--out", str(tmp_path / "b")])
    assert again.exit_code == 1 and "--force" in again.stderr  # never overwritten silently
    ran = subprocess.run([sys.executable, *COMMAND.removeprefix("cmd:python ").split()],
                         cwd=copy, capture_output=True, text=True, check=True)
    assert f"val loss {summary['best_score']:.4f}" in ran.stdout.splitlines()[-1]
    best = deepphoenix.load(run_dir).best
    assert set(best.files) == {"model.py", "config/train_small.py"}
    assert "+++ " + best.hash[:12] + "/" in best.diff  # a diff file by file
    report = tmp_path / "report.html"
    assert runner.invoke(cli, ["report", str(run_dir), "-o", str(report)]).exit_code == 0
    assert "/config/train_small.py" in report.read_text()
    study = tmp_path / "study.db"
    exported = runner.invoke(cli, ["lineage", "export", str(run_dir), "--format", "optuna",
                                   "-o", str(study)])
    assert exported.exit_code == 0 and "5 complete trials" in exported.stdout


def test_verify_finds_a_rewritten_file_of_a_bundle(project_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, run_dir = project_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    with sqlite3.connect(copy / "run.sqlite") as db:
        (hash_, source), = db.execute(
            "SELECT hash, source FROM variants ORDER BY created_at LIMIT 1 OFFSET 2")
        db.execute("UPDATE variants SET source = ? WHERE hash = ?",
                   (source.replace("out_dir = ", "import os; out_dir = "), hash_))
    result = CliRunner().invoke(cli, ["lineage", "verify", str(copy)])
    assert result.exit_code == 1 and f"{hash_}: its stored source differs" in result.stdout


def test_a_project_run_killed_with_9_resumes_to_the_same_result(project_run,
                                                                tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    project, reference = project_run
    slow = [a.replace("--max_iters=6", "--max_iters=6 --sleep=0.15") for a in run_args(
        project)]
    run_dir = tmp_path / "killed"
    proc = _spawn([*slow, "--run-dir", str(run_dir), "--json"], tmp_path)
    _wait_for(run_dir, 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    before = {h for h, status, _ in _scores(run_dir) if status in ("scored", "failed")}
    resumed = _spawn(["run", "--run-dir", str(run_dir), "--resume", "--json"], tmp_path)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert not before & set(_evaluated_hashes(out)), "a completed evaluation was repeated"
    assert _scores(run_dir) == _scores(reference)
    assert sorted(p.name for p in (run_dir / "best").rglob("*.py")) == ["model.py",
                                                                       "train_small.py"]


def test_the_python_api_searches_a_project_with_rungs(tmp_path: Path) -> None:
    project = write_project(tmp_path / "nanogpt")
    settings = dict(objective=COMMAND, metric=METRIC, grammar="nanogpt", proposer="random",
                    strategy="async", budget=6, preset="smoke", quiet=True,
                    with_sources=[str(project / "config" / "train_small.py")], workers=1,
                    fidelity="asha", max_steps=6, eta=2, min_resource=2, timeout=60.0)
    study = deepphoenix.search(project / "model.py", run_dir=tmp_path / "run", **settings)
    assert set(study.best.files) == {"model.py", "config/train_small.py"}
    rungs = [t for t in study.trials if t.status == "pruned"]
    assert rungs, "no candidate stopped at a rung"
    with RunStore.open(tmp_path / "run") as store:
        stopped = [r for r in store.rungs() if r["metrics"].get("asked_to_stop")]
    assert stopped and all(r["metrics"]["reports"][-1][0] >= r["resource"] for r in stopped)
    again = deepphoenix.search(project / "model.py", run_dir=tmp_path / "run", **settings)
    assert again.best.hash == study.best.hash  # the same search: opened, not refused


def _refused(args: list[str], message: str, run_dir: Path) -> None:
    result = CliRunner().invoke(cli, [*args, "--run-dir", str(run_dir)])
    assert result.exit_code == 1, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert not run_dir.exists()


def test_bad_input_is_one_line_before_anything_runs(tmp_path: Path) -> None:
    project = write_project(tmp_path / "nanogpt")
    runs = tmp_path / "runs"
    (project / "notes.py").write_text("greeting = 'hello'\n")
    _refused([*run_args(project), "--with", str(project / "notes.py")],
             "grammar 'nanogpt' binds no site in notes.py", runs / "a")
    model = (GRAMMAR_FILES / "nanogpt_model.py").read_text()
    (project / "gpt.py").write_text(model)
    (project / "gpt_copy.py").write_text(model)
    swapped = [a if a != str(project / "model.py") else str(project / "gpt.py")
               for a in run_args(project)]
    _refused([*swapped, "--with", str(project / "gpt_copy.py")],
             "is code in both gpt.py", runs / "b")
    typo = [a.replace("cmd:python", "cmd:pyhton") for a in run_args(project)]
    _refused(typo, "command 'pyhton' not found on PATH", runs / "c")
    no_group = [a if a != METRIC else "val loss [0-9.]+" for a in run_args(project)]
    _refused(no_group, "has no group: put the value in parentheses", runs / "d")
    _refused(run_args(project), "is inside the project", project / "runs" / "e")
    _refused([*run_args(project), "--proposer", "learned"], "proposes with one that reads "
             "site values", runs / "f")
    outside = tmp_path / "elsewhere.py"
    outside.write_text("n_layer = 3\n")
    _refused([*run_args(project), "--with", str(outside)], "is not inside the project",
             runs / "g")
    _refused(["run", "--source", "tiny", "--objective", COMMAND, "--metric", METRIC,
              "--proposer", "random"], "'tiny' is not a file", runs / "h")
    _refused(["run", "--preset", "smoke", "--metric", METRIC], "is not one", runs / "i")
    _refused([*run_args(project), "--objective", "fewshot", "--metric", METRIC], "is not one",
             runs / "j")


def test_a_command_that_never_prints_a_match_fails_in_one_line(tmp_path: Path) -> None:
    project = write_project(tmp_path / "nanogpt")
    args = [a if a != METRIC else r"test acc (\d+)" for a in run_args(project)]
    result = CliRunner().invoke(cli, [*args, "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert "the seed itself fails at the command stage: no line of its output matches" in \
        result.stderr
    assert "step 6: train loss" in result.stderr  # its last lines say why
    with RunStore.open(tmp_path / "run") as store:
        (seed,) = store.variants()
    assert seed.status == "failed" and seed.metrics["exit_code"] == 0


def _sentences(count: int) -> str:
    """A small text for a character-level model (written here: nothing is downloaded)."""
    who, does, what = ("the cat", "a dog", "my friend", "the old man"), (
        "sees", "finds", "likes", "walks past"), ("the river", "a red ball", "the house")
    return "".join(f"{who[i % 4]} {does[i * 7 % 4]} {what[i * 5 % 3]}.\n"
                   for i in range(count))


@pytest.mark.slow
def test_the_nanogpt_walk_through(tmp_path: Path) -> None:
    """The README's walk-through on the project's own nanoGPT-style files: a data set
    prepared from a local input.txt, structural sites in model.py and sizes, learning rate
    and dropout in a config, the training command as the objective, the best bundle
    written out and run again with the same command."""
    project = tmp_path / "nanogpt"
    (project / "data" / "tiny").mkdir(parents=True)
    (project / "config").mkdir()
    shutil.copy(GRAMMAR_FILES / "nanogpt_model.py", project / "model.py")
    shutil.copy(GRAMMAR_FILES / "nanogpt_train_cpu.py", project / "train.py")
    shutil.copy(GRAMMAR_FILES / "nanogpt_prepare.py", project / "data" / "tiny" / "prepare.py")
    (project / "data" / "tiny" / "input.txt").write_text(_sentences(3000))
    subprocess.run([sys.executable, "data/tiny/prepare.py"], cwd=project, check=True)
    (project / "config" / "train_tiny.py").write_text(
        "n_layer = 1\nn_head = 2\nn_embd = 64\nblock_size = 64\ndropout = 0.0\n"
        "learning_rate = 3e-3\n")
    command = "cmd:python train.py config/train_tiny.py --max_iters=10"
    run_dir = tmp_path / "runs" / "walk"
    result = CliRunner().invoke(cli, [
        "run", "--source", str(project / "model.py"), "--with",
        str(project / "config" / "train_tiny.py"), "--grammar", "nanogpt", "--objective",
        command, "--metric", r"val loss ([0-9.]+)", "--proposer", "random", "--episodes", "1",
        "--batches", "1", "--candidates", "2", "--workers", "1", "--threads", "1",
        "--timeout", "600", "--run-dir", str(run_dir)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["evaluations"] == 3 and summary["best_score"] <= summary["seed_score"]
    best = tmp_path / "best"
    assert CliRunner().invoke(cli, ["lineage", "best", str(run_dir), "--out", str(best)]
                              ).exit_code == 0
    shutil.copytree(best, project, dirs_exist_ok=True)  # the best bundle, in place
    ran = subprocess.run([sys.executable, *command.removeprefix("cmd:python ").split()],
                         cwd=project, capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert ran.stdout.splitlines()[-1].endswith(f"val loss {summary['best_score']:.4f}")


SCORE = '''\
def evaluate(program, ctx):
    """The model file is the program; the config is read from the candidate's workspace."""
    names = {}
    exec((ctx.workdir / "config" / "train_small.py").read_text(), names)
    assert (ctx.workdir / "train.py").exists() and not (ctx.workdir / ".git").exists()
    return names["n_layer"] * 10 + program["GPTConfig"]().block_size / 64
'''


def test_a_python_objective_finds_the_candidates_files_in_its_workdir(tmp_path: Path) -> None:
    project = write_project(tmp_path / "nanogpt")
    (tmp_path / "score.py").write_text(SCORE)
    args = [a if a != COMMAND else f"{tmp_path / 'score.py'}:evaluate"
            for a in run_args(project) if a not in ("--metric", METRIC)]
    result = CliRunner().invoke(cli, [*args, "--run-dir", str(tmp_path / "run")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with RunStore.open(tmp_path / "run") as store:
        variants = store.variants()
    assert all(v.status == "scored" for v in variants)
    for v in variants:  # each candidate's own files, not the project's
        assert v.score == v.values["n_layer"] * 10 + v.values["block_size"] / 64


def test_a_resume_needs_the_project_it_ran_in(tmp_path: Path) -> None:
    project = write_project(tmp_path / "nanogpt")
    plan = deepphoenix.study.plan_search(
        project / "model.py", objective=COMMAND, metric=METRIC, grammar="nanogpt",
        proposer="random", with_sources=[str(project / "config" / "train_small.py")])
    plan.start(tmp_path / "run").close()
    assert plan.config.project == str(project.resolve())  # stored absolute
    project.rename(tmp_path / "moved")
    result = CliRunner().invoke(cli, ["run", "--run-dir", str(tmp_path / "run"), "--resume"])
    assert result.exit_code == 1 and "the run's project" in result.stderr
    assert "is gone" in result.stderr and len(result.stderr.strip().splitlines()) == 1
