"""Any program, any objective, end to end with real workers: a user's own non-seq2seq
model under a user objective (maximized), with kill -9 and resume; a program that defines
its own learning dynamics and train(); the val-loss objective; the GPT task; and a run
directory written by the release before objectives existed."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from deepphoenix.cli import cli
from deepphoenix.engine import RunConfig, prepare_run_data
from deepphoenix.evaluator import EvalSettings, EvalStatus, Evaluator
from deepphoenix.executor import ExecutorSettings, LocalExecutor
from deepphoenix.grammar import load_grammar
from deepphoenix.mutator import parse_program
from deepphoenix.objectives import resolve_objective
from deepphoenix.seeds import seed_source
from deepphoenix.store import RunStore
from tests.search.test_run import _evaluated_hashes, _spawn, _wait_for

FIXTURES = Path(__file__).parent.parent / "fixtures"

USER_MODEL = '''\
import torch


class Net(torch.nn.Module):
    def __init__(self, hidden, depth):
        super().__init__()
        layers = [torch.nn.Linear(1, hidden), torch.nn.Tanh()]
        for _ in range(depth - 1):
            layers += [torch.nn.Linear(hidden, hidden), torch.nn.Tanh()]
        self.body = torch.nn.Sequential(*layers, torch.nn.Linear(hidden, 1))

    def forward(self, x):
        return self.body(x)


hidden = 8
depth = 1
lr = 0.01
model = Net(hidden, depth)
'''

USER_GRAMMAR = '''\
name = "regression"
[sites.hidden]
select = "name:hidden"
kind = "int"
min = 2
max = 64
mutation = "scale"
scale = [0.25, 0.75]
[sites.depth]
select = "name:depth"
kind = "int"
min = 1
max = 3
[sites.lr]
select = "name:lr"
kind = "log-float"
min = 0.0001
max = 0.5
mutation = "scale"
scale = [0.5, 0.9]
'''

USER_OBJECTIVE = '''\
import time

import torch


def evaluate(program, ctx):
    """Fit sin(2x) for 30 steps; the score is the negated error (higher is better)."""
    torch.manual_seed(ctx.seed)
    model = program["model"].to(ctx.device)
    x = torch.linspace(-2, 2, 64).unsqueeze(1)
    y = torch.sin(2 * x)
    opt = torch.optim.Adam(model.parameters(), lr=program["lr"])
    for step in range(30):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0:
            ctx.report(step, float(loss))
    (ctx.workdir / "scratch.txt").write_text("the objective may write here")
    time.sleep(0.3)  # slow enough for the kill below to land mid-run
    return {"score": -float(loss), "mse": float(loss)}
'''


def _user_files(folder: Path) -> list[str]:
    (folder / "model.py").write_text(USER_MODEL)
    (folder / "g.toml").write_text(USER_GRAMMAR)
    (folder / "score.py").write_text(USER_OBJECTIVE)
    return ["run", "--source", str(folder / "model.py"), "--grammar", str(folder / "g.toml"),
            "--objective", f"{folder / 'score.py'}:evaluate", "--direction", "maximize",
            "--proposer", "random", "--episodes", "2", "--batches", "2", "--candidates", "3",
            "--seed", "3"]


def _scores(run_dir: Path) -> list[tuple[str, str, float | None]]:
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        return [(h, s, None if x is None else round(x, 6)) for h, s, x in db.execute(
            "SELECT hash, status, score FROM variants ORDER BY hash")]


@pytest.fixture(scope="module")
def user_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    folder = tmp_path_factory.mktemp("user")
    args = _user_files(folder)
    result = CliRunner().invoke(cli, [*args, "--run-dir", str(folder / "run")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return folder / "run", args


def test_a_users_own_model_and_objective_run_end_to_end(user_run) -> None:  # type: ignore[no-untyped-def]
    run_dir, _ = user_run
    with RunStore.open(run_dir) as store:
        assert store.objective["direction"] == "maximize"
        assert "def evaluate(program, ctx)" in store.objective["text"]  # kept in the run
        variants = [v for v in store.variants() if v.status == "scored"]
        seed = store.variants()[0]
    assert len(variants) >= 8
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["direction"] == "maximize"
    assert summary["best_score"] == pytest.approx(max(v.score for v in variants))  # type: ignore[type-var]
    assert summary["best_score"] > summary["seed_score"]
    assert seed.metrics["mse"] == pytest.approx(-seed.score)  # type: ignore[operator]
    assert [step for step, _ in seed.metrics["reports"]] == [0, 10, 20]
    assert seed.metrics["params"] == 8 * 2 + 9  # counted by trusted code


def test_lineage_commands_follow_the_direction(user_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run_dir, _ = user_run
    runner = CliRunner()
    summary = json.loads((run_dir / "summary.json").read_text())
    best = runner.invoke(cli, ["lineage", "best", str(run_dir)])
    assert best.exit_code == 0 and best.stdout == (run_dir / "best.py").read_text()
    shown = json.loads(runner.invoke(cli, ["lineage", "show", str(run_dir), "--json"]).stdout)
    assert shown["direction"] == "maximize"
    scores = [step["score"] for step in shown["path"]]
    assert scores == sorted(scores) and scores[-1] == pytest.approx(summary["best_score"])
    text = runner.invoke(cli, ["lineage", "show", str(run_dir)]).stdout
    assert "higher is better" in text
    out = tmp_path / "lineage.json"
    assert runner.invoke(cli, ["lineage", "export", str(run_dir), "-o", str(out)]).exit_code == 0
    exported = json.loads(out.read_text())
    assert exported["graph"]["direction"] == "maximize"
    plots = runner.invoke(cli, ["plot", str(run_dir), "-o", str(tmp_path / "plots")])
    assert plots.exit_code == 0 and (tmp_path / "plots" / "lineage.png").exists()


def test_a_user_objective_run_killed_with_9_resumes_to_the_same_result(
        user_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    reference, args = user_run
    run_dir = tmp_path / "killed"
    proc = _spawn([*args, "--run-dir", str(run_dir), "--json"], tmp_path)
    _wait_for(run_dir, 4, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    before = {h for h, status, _ in _scores(run_dir) if status in ("scored", "failed")}
    resumed = _spawn(["run", "--run-dir", str(run_dir), "--resume", "--json"], tmp_path)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert not before & set(_evaluated_hashes(out)), "a completed evaluation was repeated"
    assert _scores(run_dir) == _scores(reference)
    assert json.loads(out.splitlines()[-1])["best_hash"] == json.loads(
        (reference / "summary.json").read_text())["best_hash"]


TRAIN_RAISES = '''
def train(model, ctx):
    raise RuntimeError("this train() fails on purpose")
'''
TRAIN_SILENT = '''
def train(model, ctx):
    return None
'''


def test_a_programs_own_dynamics_and_train_decide_its_score(tmp_path: Path) -> None:
    seed = seed_source("tiny-train")
    program = parse_program(seed, load_grammar("t5-train"))
    lr_only = program.apply({"lr": 3e-3})
    assert lr_only.ok and lr_only.variant is not None
    sources = {
        "seed": seed,
        "lr": lr_only.variant.source,  # only the lr literal differs
        "raises": seed + TRAIN_RAISES,  # a later definition replaces the seed's train()
        "silent": seed + TRAIN_SILENT,
        "builtin": seed.replace("def train(", "def _unused_train("),  # the built-in loop
    }
    # a 2048-token BPE reads a row in ~80 tokens (300 tokens: ~1.7 k, 100 s an evaluation)
    config = RunConfig(dataset_size=40, fewshot_samples=32, vocab_size=2048, seed=1)
    data = prepare_run_data(tmp_path, config, program, refinement=False)
    settings = EvalSettings(objective=resolve_objective("fewshot"), rows=data.rows,
                            vocab_size=data.vocab_size, samples=32, seed=1, timeout=600)
    with LocalExecutor(ExecutorSettings(workers=1)) as executor:
        results = {r.hash: r for r in Evaluator(executor, settings).evaluate(
            list(sources.items()))}
    seed_result, lr_result = results["seed"], results["lr"]
    assert seed_result.status is EvalStatus.SCORED and lr_result.status is EvalStatus.SCORED
    assert lr_result.score != pytest.approx(seed_result.score, abs=1e-4)
    assert seed_result.metrics["dynamics"]["own_train"] is True
    assert seed_result.metrics["steps"] == 2  # its batch_size (16) over 32 samples
    assert (results["raises"].status, results["raises"].stage) == (EvalStatus.FAILED, "train")
    assert "this train() fails on purpose" in results["raises"].reason
    assert "Traceback" in results["raises"].traceback
    assert (results["silent"].stage, results["silent"].status) == ("train", EvalStatus.FAILED)
    assert "computed no loss" in results["silent"].reason
    builtin = results["builtin"]
    assert builtin.status is EvalStatus.SCORED and builtin.metrics["dynamics"]["own_train"] is False
    # the seed's train() does what the built-in loop does: the same score
    assert builtin.score == pytest.approx(seed_result.score, rel=1e-6)


def test_a_train_function_that_hangs_is_killed_and_recorded_at_its_stage(
        tmp_path: Path) -> None:
    seed = seed_source("tiny-train") + "\ndef train(model, ctx):\n    while True:\n        pass\n"
    program = parse_program(seed_source("tiny-train"), load_grammar("t5-train"))
    config = RunConfig(dataset_size=40, fewshot_samples=32, vocab_size=300)
    data = prepare_run_data(tmp_path, config, program, refinement=False)
    settings = EvalSettings(objective=resolve_objective("fewshot"), rows=data.rows,
                            vocab_size=data.vocab_size, samples=32, timeout=60)
    with LocalExecutor(ExecutorSettings(workers=1)) as executor:
        (result,) = Evaluator(executor, settings).evaluate([("hangs", seed)])
    assert (result.status, result.stage) == (EvalStatus.FAILED, "train")
    assert result.reason.startswith("timeout: timed out after 60 s")


def test_val_loss_scores_held_out_pairs(tmp_path: Path) -> None:
    program = parse_program(seed_source("tiny"), load_grammar("t5"))
    config = RunConfig(dataset_size=48, fewshot_samples=32, heldout_samples=16,
                       vocab_size=300, objective="val-loss")
    data = prepare_run_data(tmp_path, config, program, refinement=False)
    settings = EvalSettings(objective=resolve_objective("val-loss"), rows=data.rows,
                            vocab_size=data.vocab_size, samples=32, heldout=16, timeout=600)
    with LocalExecutor(ExecutorSettings(workers=1)) as executor:
        (result,) = Evaluator(executor, settings).evaluate([(program.hash, program.text)])
    assert result.status is EvalStatus.SCORED
    assert result.score == result.metrics["heldout_loss"]
    assert result.score != pytest.approx(result.metrics["mean_loss"])


def test_the_gpt_task_runs_end_to_end(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, [
        "run", "--preset", "gpt-cpu", "--proposer", "random", "--episodes", "1",
        "--batches", "1", "--candidates", "2", "--fewshot-samples", "32",
        "--run-dir", str(tmp_path / "run"), "--no-plots", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["objective"] == "val-loss" and summary["seed_params"] > 100_000
    corpus = json.loads((tmp_path / "run" / "data" / "corpus.json").read_text())
    assert corpus["rows"] == 32 + 64


def test_a_run_written_before_objectives_opens_and_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "legacy"
    shutil.copytree(FIXTURES / "legacy_v1" / "partial", run_dir)
    expected = json.loads((FIXTURES / "legacy_v1" / "uninterrupted.json").read_text())
    runner = CliRunner()
    shown = runner.invoke(cli, ["lineage", "show", str(run_dir)])
    assert shown.exit_code == 0 and "fewshot 6.1333" in shown.stdout
    result = runner.invoke(cli, ["run", "--run-dir", str(run_dir), "--resume", "--no-plots"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # Same variants, same statuses, scores equal to float noise: the last digit of a
    # 6-decimal score moves with the environment's float kernels (seen: 6.427224 vs 6.427225).
    rows = [list(row) for row in _scores(run_dir)]
    assert [row[:2] for row in rows] == [row[:2] for row in expected["variants"]]
    assert [row[2] for row in rows] == pytest.approx([row[2] for row in expected["variants"]],
                                                     abs=2e-6)
    assert json.loads((run_dir / "summary.json").read_text())["best_hash"] == expected["best"]


def test_the_pareto_front_of_score_and_parameters(user_run) -> None:  # type: ignore[no-untyped-def]
    run_dir, _ = user_run
    result = CliRunner().invoke(cli, ["lineage", "pareto", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    front = json.loads(result.stdout)["front"]
    assert [p["params"] for p in front] == sorted({p["params"] for p in front})
    assert [p["score"] for p in front] == sorted(p["score"] for p in front)  # maximized
    with RunStore.open(run_dir) as store:
        scored = [v for v in store.variants() if v.status == "scored"]
    for v in scored:  # nothing off the front beats a front point on both counts
        assert any(p["params"] <= v.metrics["params"] and p["score"] >= v.score  # type: ignore[operator]
                   for p in front)
    assert max(p["score"] for p in front) == pytest.approx(max(v.score for v in scored))  # type: ignore[type-var]
    shown = CliRunner().invoke(cli, ["lineage", "pareto", str(run_dir)]).stdout.splitlines()
    for line, point in zip(shown, front, strict=True):  # small counts as counts, not "0.00 M"
        assert line.endswith(f"{point['params']:,} params" if point["params"] < 10_000
                             else f"{point['params'] / 1e6:.2f} M params")


def test_candidates_over_max_params_are_rejected_before_they_are_evaluated(
        tmp_path: Path) -> None:
    args = _user_files(tmp_path)
    result = CliRunner().invoke(cli, [*args, "--max-params", "40", "--episodes", "1",
                                      "--run-dir", str(tmp_path / "run")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with RunStore.open(tmp_path / "run") as store:
        variants = store.variants()
        attempts = store.attempts()
    over = [v for v in variants if v.metrics.get("params", 0) > 40]
    # Checked before an evaluation slot (the model counted without weights): never
    # evaluated, and the slot drawn again.
    assert over and all(v.status == "rejected" and v.stage == "constraint" and
                        "over the limit of 40" in v.reason and v.scored_at is None
                        for v in over)
    assert any(a.redraw_of is not None for a in attempts)
    assert all(v.metrics["params"] <= 40 for v in variants if v.status == "scored")
