"""Constraints cost no evaluation, and a run fails fast and says so (issue 28, items 4-5):
``--max-params`` and ``--constraint`` are checked in a worker before a candidate takes an
evaluation slot, a rejected candidate's slot is drawn again and the proposer told, the
redraws are recorded and replayed on resume, and every check that can end a run runs
before any data is made. Real runs on real workers: a program with a torch model whose
score is a cheap function of its sites (nothing trains)."""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import deepphoenix
from deepphoenix.cli import cli
from deepphoenix.engine import SearchLoop
from deepphoenix.store import RunStore
from tests.search import synthetic
from tests.search.test_run import _spawn, _wait_for

PROGRAM = """\
import torch
width = 3
rate = 0.5
model = torch.nn.Linear(width, width)
"""

RULES = '''\
def narrow(program, ctx):
    if ctx.values["width"] > 3:
        return f"width {ctx.values['width']} is over 3"
    return None


def only_the_seed(program, ctx):
    if (program["width"], program["rate"]) != (3, 0.5):
        return "not the seed"
    return None


def raises(program, ctx):
    return program["missing"]


def raises_when_wide(program, ctx):
    if program["width"] > 3:
        raise ValueError(f"cannot judge width {program['width']}")
    return None
'''


def _files(folder: Path, program: str = PROGRAM, pause: float = 0.0) -> list[str]:
    """The synthetic run's files, its program with a torch model (width x width + width
    parameters); the `deepphoenix run` arguments."""
    args = synthetic.write(folder, steps=3, pause=pause)
    (folder / "prog.py").write_text(program)
    (folder / "rules.py").write_text(RULES)
    return [*args, "--episodes", "1", "--batches", "2", "--candidates", "3"]


def _rows(run_dir: Path) -> dict[str, list[tuple[Any, ...]]]:
    """What a run recorded, for comparing two runs."""
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        return {
            "variants": db.execute("SELECT hash, status, stage, reason, score FROM variants "
                                   "ORDER BY hash").fetchall(),
            "attempts": db.execute("SELECT episode, batch, slot, redraw_of, parent, child, "
                                   "outcome FROM attempts ORDER BY episode, batch, slot"
                                   ).fetchall(),
            "checks": db.execute("SELECT hash, verdict, rule, params FROM checks ORDER BY hash"
                                 ).fetchall(),
        }


def test_max_params_keeps_every_evaluation_under_the_cap_and_counts_the_redraws(
        tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(cli, [*_files(tmp_path), "--max-params", "12", "--run-dir",
                                      str(run_dir)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with RunStore.open(run_dir) as store:
        variants = store.variants()
        attempts = store.attempts()
        checks = store.checks()
    evaluated = [v for v in variants if v.status in ("scored", "failed")]
    assert evaluated and all(v.metrics["params"] <= 12 for v in evaluated)
    rejected = {v.hash for v in variants if v.status == "rejected"}
    assert rejected and all(checks[h].rule == "max-params" and checks[h].params > 12  # type: ignore[operator]
                            for h in rejected)
    # every candidate that took no evaluation slot was drawn again, or its slot was lost
    redraws = {(a.batch, a.redraw_of) for a in attempts if a.redraw_of is not None}
    lost = [a for a in attempts if a.child in rejected and (a.batch, a.slot) not in redraws]
    assert redraws and len(redraws) + len(lost) == len(rejected)
    assert len(evaluated) == 1 + 6 - len(lost)  # the seed, and every slot not lost
    shown = CliRunner().invoke(cli, ["lineage", "show", str(run_dir)])
    assert (f"constraints: {len(rejected)} of {len(checks) - 1} candidates rejected before "
            f"evaluation ({len(rejected)} over --max-params), {len(redraws)} drawn again, "
            f"{len(lost)} slot") in shown.output
    counted = json.loads(CliRunner().invoke(cli, ["lineage", "show", str(run_dir),
                                                  "--json"]).output)["constraints"]
    assert (counted["rejected"], counted["redraws"], counted["lost"]) == (
        len(rejected), len(redraws), len(lost))


def test_the_asynchronous_loop_checks_and_redraws_too(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(cli, [*_files(tmp_path), "--max-params", "12", "--strategy",
                                      "async", "--proposer", "tpe", "--run-dir", str(run_dir)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with RunStore.open(run_dir) as store:
        variants = store.variants()
        attempts = store.attempts()
    assert all(v.metrics["params"] <= 12 for v in variants if v.status == "scored")
    assert any(v.stage == "constraint" for v in variants)
    assert any(a.redraw_of is not None for a in attempts)


def test_a_user_constraint_is_honoured_from_the_cli_and_the_api(tmp_path: Path) -> None:
    args = _files(tmp_path)
    result = CliRunner().invoke(cli, [*args, "--constraint", f"{tmp_path / 'rules.py'}:narrow",
                                      "--run-dir", str(tmp_path / "cli")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output

    def narrow(program: Any, ctx: Any) -> str | None:  # shipped to the worker by value
        return None if ctx.values["width"] <= 3 else "too wide"

    study = deepphoenix.search(
        PROGRAM, grammar=str(tmp_path / "g.toml"), objective=f"{tmp_path / 'score.py'}:evaluate",
        proposer="random", constraint=narrow, run_dir=tmp_path / "api", quiet=True,
        episodes=1, batches=2, candidates=3)
    for run_dir, reason in ((tmp_path / "cli", "is over 3"), (tmp_path / "api", "too wide")):
        with RunStore.open(run_dir) as store:
            variants = store.variants()
        assert all(v.values["width"] <= 3 for v in variants if v.status == "scored")
        rejected = [v for v in variants if v.status == "rejected"]
        assert rejected and all(v.stage == "constraint" and reason in v.reason
                                for v in rejected)
    assert study.constraints().rejected == len(
        [t for t in study.trials if t.status == "rejected"])


def test_a_constraint_that_raises_on_the_seed_ends_the_run_before_any_data(
        tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # learned: a proposer that makes refinement pairs before anything is evaluated
    args = [*_files(tmp_path), "--proposer", "learned"]
    result = CliRunner().invoke(cli, [*args, "--constraint", f"{tmp_path / 'rules.py'}:raises",
                                      "--run-dir", str(run_dir)])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: the constraint fails on the seed: {tmp_path / 'rules.py'}:raises raised "
        "KeyError: 'missing'; fix it and start a new run")
    assert "Traceback" not in result.output
    assert not (run_dir / "data" / "pairs.jsonl").exists()  # before any dataset


def test_an_objective_that_cannot_import_ends_the_run_before_any_data(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = [*_files(tmp_path), "--proposer", "learned"]
    score = tmp_path / "score.py"
    score.write_text("import no_such_module_here\n" + score.read_text())
    result = CliRunner().invoke(cli, [*args, "--run-dir", str(run_dir)])
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: the objective {score}:evaluate does not load in a "
                           "worker: ModuleNotFoundError")
    assert "Traceback" not in result.output
    assert not (run_dir / "data" / "pairs.jsonl").exists()


def test_max_params_on_a_program_without_a_model_is_refused(tmp_path: Path) -> None:
    args = _files(tmp_path, program=synthetic.PROGRAM)
    result = CliRunner().invoke(cli, [*args, "--max-params", "100", "--run-dir",
                                      str(tmp_path / "run")])
    assert result.exit_code == 1
    assert "error: --max-params 100 counts the parameters of the program's `model`, and the " \
           "seed defines none" in result.stderr


def test_a_constraint_that_raises_on_a_candidate_rejects_it_and_says_so_once(
        tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(cli, [*_files(tmp_path), "--constraint",
                                      f"{tmp_path / 'rules.py'}:raises_when_wide", "--run-dir",
                                      str(run_dir)])
    assert result.exit_code == 0, result.output
    with RunStore.open(run_dir) as store:
        rejected = [v for v in store.variants() if v.status == "rejected"]
    assert rejected and all(v.stage == "constraint" and "raised ValueError: cannot judge width"
                            in v.reason and "Traceback" in v.traceback for v in rejected)
    warnings = [line for line in result.stderr.splitlines()
                if "the constraint failed on candidate" in line]
    assert len({w.split("raised")[1] for w in warnings}) == len(warnings) >= 1
    assert "Traceback" not in result.output


def test_a_run_that_evaluates_nothing_but_its_seed_exits_non_zero_and_says_why(
        tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(cli, [*_files(tmp_path), "--constraint",
                                      f"{tmp_path / 'rules.py'}:only_the_seed",
                                      "--constraint-rounds", "2", "--run-dir", str(run_dir)])
    assert result.exit_code == 1
    assert "finished in" not in result.output and "+0.0%" not in result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the run evaluated nothing but its seed: none of the ")
    assert last.endswith("proposals of random could be evaluated: "
                         f"{last.split('none of the ')[1].split(' ')[0]} broke the constraint "
                         "(not the seed)")
    # each batch where nothing could be evaluated said so, naming the proposer
    batch = [line for line in result.stderr.splitlines() if "can be evaluated" in line]
    assert len(batch) == 2 and all("proposals of random can be evaluated: " in line
                                   for line in batch)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["evaluations"] == 1 and summary["nothing_evaluated"] == last[len("error: "):]


def test_an_interrupted_redraw_resumes_to_the_uninterrupted_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopped right after a redraw was recorded (before it was checked): the resume
    reuses the stored draw, tells the proposer the stored rejections in the order it was
    told them, and ends where an uninterrupted run ends (tpe learns from both)."""
    _files(tmp_path)
    options = {"episodes": 1, "batches": 2, "candidates": 3, "proposer": "tpe",
               "max_params": 12}

    def run(run_dir: Path) -> Any:
        return deepphoenix.search(
            PROGRAM, grammar=str(tmp_path / "g.toml"),
            objective=f"{tmp_path / 'score.py'}:evaluate", run_dir=run_dir, quiet=True,
            **options)

    run(tmp_path / "reference")
    reference = _rows(tmp_path / "reference")
    assert any(row[3] is not None for row in reference["attempts"]), "no redraw to interrupt"
    original = SearchLoop._draw

    def draw_then_stop(self: SearchLoop, *a: Any, **k: Any) -> None:
        original(self, *a, **k)
        if a[-1]:  # a redraw (slots given): recorded, then the process "dies"
            raise KeyboardInterrupt

    monkeypatch.setattr(SearchLoop, "_draw", draw_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "stopped")
    monkeypatch.setattr(SearchLoop, "_draw", original)
    stopped = _rows(tmp_path / "stopped")
    assert any(row[3] is not None for row in stopped["attempts"])
    assert len(stopped["checks"]) < len(reference["checks"])
    deepphoenix.load(tmp_path / "stopped").resume(quiet=True)
    assert _rows(tmp_path / "stopped") == reference


def test_a_run_with_redraws_killed_with_9_resumes_to_the_same_result(tmp_path: Path) -> None:
    args = [*_files(tmp_path, pause=0.2), "--proposer", "tpe", "--max-params", "12"]
    reference = tmp_path / "reference"
    done = _spawn([*args, "--run-dir", str(reference)], tmp_path)
    _, err = done.communicate(timeout=600)
    assert done.returncode == 0, err
    run_dir = tmp_path / "killed"
    proc = _spawn([*args, "--run-dir", str(run_dir)], tmp_path)
    _wait_for(run_dir, 4, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    resumed = _spawn(["run", "--run-dir", str(run_dir), "--resume", "--no-plots"], tmp_path)
    _out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    expected = _rows(reference)
    assert any(row[3] is not None for row in expected["attempts"])  # it did redraw
    assert _rows(run_dir) == expected


def test_a_run_checks_no_candidate_when_it_has_no_constraint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No rule, no check job per candidate: a run without --max-params or --constraint
    evaluates what it did before (its pre-flight still loads a user objective)."""
    from deepphoenix.evaluator import Checker

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("a candidate was checked in a run without constraints")

    monkeypatch.setattr(Checker, "check", refuse)
    _files(tmp_path)
    study = deepphoenix.search(
        PROGRAM, grammar=str(tmp_path / "g.toml"), objective=f"{tmp_path / 'score.py'}:evaluate",
        proposer="random", run_dir=tmp_path / "run", quiet=True, episodes=1, batches=1,
        candidates=2)
    assert study.summary is not None and study.summary.evaluations == 3


def test_a_run_database_from_before_the_checks_reads_and_upgrades(tmp_path: Path) -> None:
    """A schema-2 database without the checks table and the attempts' redraw_of column
    (written before them) reads as it is and gains both when a resume upgrades it."""
    store = RunStore.create(tmp_path, {"episodes": 1})
    store.add_attempts([{"episode": 1, "batch": 1, "slot": 0, "parent": "p", "child": "c",
                         "proposer": "random", "outcome": "ok", "reason": "", "raw_text": ""}])
    store.db.execute("DROP TABLE checks")
    store.db.execute("ALTER TABLE attempts DROP COLUMN redraw_of")
    store.close()
    with RunStore.open(tmp_path) as old:
        assert [a.redraw_of for a in old.attempts()] == [None]
        assert old.checks() == {} and old.check("c") is None and old.blocked() == []
    with RunStore.open(tmp_path, write=True) as resumed:
        resumed.upgrade()
        resumed.add_attempts([{"episode": 1, "batch": 1, "slot": 1, "parent": "p",
                               "child": "d", "proposer": "random", "outcome": "ok",
                               "reason": "", "raw_text": "", "redraw_of": 0}])
        assert [a.redraw_of for a in resumed.attempts()] == [None, 0]
        assert resumed.checks() == {}


PROJECT_RULES = '''\
def short(program, ctx):
    # program: what model.py (the candidate's first file) defines; ctx.values: the sites
    # of every file of the candidate
    config = program["GPTConfig"](n_layer=ctx.values["n_layer"])
    if ctx.values["block_size"] > 64:
        return f"block_size {ctx.values['block_size']} for {program['parameters'](config)}"
    return None
'''


def test_a_project_run_with_a_command_objective_is_checked_too(tmp_path: Path) -> None:
    """Several files (--with) and a command objective (issue 32): the constraint gets what
    the candidate's first file defines and every file's site values; a candidate it
    rejects takes no slot and is drawn again."""
    from tests.search.project import run_args, write_project

    project = write_project(tmp_path / "nanogpt")
    (tmp_path / "rules.py").write_text(PROJECT_RULES)
    run_dir = tmp_path / "runs" / "x"
    result = CliRunner().invoke(cli, [*run_args(project), "--constraint",
                                      f"{tmp_path / 'rules.py'}:short", "--run-dir",
                                      str(run_dir)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with RunStore.open(run_dir) as store:
        variants = store.variants()
        attempts = store.attempts()
        checks = store.checks()
    scored = [v for v in variants if v.status == "scored"]
    assert len(scored) == 5 and all(v.values["block_size"] <= 64 for v in scored)
    rejected = [v for v in variants if v.status == "rejected"]
    assert rejected and all(v.stage == "constraint" and v.values["block_size"] > 64
                            and "for 401536" in v.reason for v in rejected)
    assert all(checks[v.hash].verdict.value == "reject" for v in rejected)
    assert sum(a.redraw_of is not None for a in attempts) == len(rejected)


def test_max_params_with_a_command_objective_and_no_model_is_one_line(tmp_path: Path) -> None:
    from tests.search.project import run_args, write_project

    project = write_project(tmp_path / "nanogpt")
    run_dir = tmp_path / "runs" / "x"
    result = CliRunner().invoke(cli, [*run_args(project), "--max-params", "1000",
                                      "--run-dir", str(run_dir)])
    assert result.exit_code == 1
    assert [line for line in result.stderr.splitlines() if "error" in line] == [
        "error: --max-params 1,000 counts the parameters of the `model` that model.py "
        "defines, and it defines none (a command objective builds its model in its own "
        "command); count it in a --constraint FILE.py:NAME instead: it gets what model.py "
        "defines and the candidate's site values (ctx.values), on the meta device"]
    assert "Traceback" not in result.output
    with RunStore.open(run_dir) as store:
        assert store.evaluations_done() == 0
