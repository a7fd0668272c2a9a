"""Careless and hostile input around a run's results: a run directory holding a user's
files, a run database rewritten behind deepphoenix's back (`lineage verify`, `lineage
best`), scores too large to print, metrics JSON cannot carry."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from deepphoenix.cli import cli
from deepphoenix.engine import Run, preset
from deepphoenix.errors import RunDirError
from deepphoenix.evaluator import EvalResult, EvalStatus
from deepphoenix.scores import format_score
from deepphoenix.store import RunStore

LEGACY = Path(__file__).parent.parent / "fixtures" / "legacy_v1" / "partial"


def test_a_folder_of_the_users_is_used_only_with_force_and_never_overwritten(
        tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    with pytest.raises(RunDirError, match=r"did not create .*--force"):
        Run(mine, preset("smoke"))
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]  # nothing written
    Run(mine, preset("smoke"), force=True).close()
    assert (mine / "run.sqlite").exists() and (mine / "notes.txt").read_text() == "my notes"
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "best.py").write_text("print('my own best.py')\n")
    for force in (False, True):  # a file the run would write is never overwritten
        with pytest.raises(RunDirError, match=r"holds files a run writes \(best.py\)"):
            Run(theirs, preset("smoke"), force=force)
    assert (theirs / "best.py").read_text() == "print('my own best.py')\n"
    assert sorted(p.name for p in theirs.iterdir()) == ["best.py"]


def _legacy(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(LEGACY, run_dir)
    return run_dir


def test_lineage_verify_finds_a_rewritten_source_and_best_never_prints_it(
        tmp_path: Path) -> None:
    run_dir = _legacy(tmp_path)
    runner = CliRunner()
    clean = runner.invoke(cli, ["lineage", "verify", str(run_dir)])
    assert clean.exit_code == 0, clean.output
    assert "0 mismatches" in clean.stdout
    honest_best = runner.invoke(cli, ["lineage", "best", str(run_dir)]).stdout
    assert honest_best
    with sqlite3.connect(run_dir / "run.sqlite") as db:  # what a hostile candidate did
        db.execute("UPDATE variants SET source = source || "
                   "'import os; os.system(\"echo pwned\")\n'")
    tampered = runner.invoke(cli, ["lineage", "verify", str(run_dir), "--json"])
    assert tampered.exit_code == 1
    report = json.loads(tampered.stdout)
    assert report["checked"] == len(report["mismatches"]) > 1
    assert "not what the seed and their recorded edits render" in tampered.stderr
    best = runner.invoke(cli, ["lineage", "best", str(run_dir)])
    assert best.exit_code == 0 and best.stdout == honest_best  # rendered, not copied
    assert "pwned" not in best.stdout


def test_values_rewritten_to_another_program_are_a_mismatch(tmp_path: Path) -> None:
    run_dir = _legacy(tmp_path)
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        (hash_, values), *_ = db.execute("SELECT hash, site_values FROM variants "
                                         "ORDER BY created_at DESC").fetchall()
        changed = {k: (v + 1 if isinstance(v, int) and not isinstance(v, bool) else v)
                   for k, v in json.loads(values).items()}
        db.execute("UPDATE variants SET site_values = ? WHERE hash = ?",
                   (json.dumps(changed), hash_))
    result = CliRunner().invoke(cli, ["lineage", "verify", str(run_dir)])
    assert result.exit_code == 1
    assert f"{hash_}: its values render" in result.stdout


def test_scores_print_compactly() -> None:
    assert format_score(1e308) == "1e+308"
    assert format_score(-1e308) == "-1e+308"
    assert format_score(1.5e-7) == "1.5e-07"
    assert format_score(0.0123456) == "0.0123"  # the usual range keeps its four decimals
    assert format_score(2.5) == "2.5000"
    assert format_score(0.0) == "0.0000"


def test_non_finite_metrics_are_stored_as_standard_json(tmp_path: Path) -> None:
    run_dir = _legacy(tmp_path)
    with RunStore.open(run_dir, write=True) as store:
        store.upgrade()  # the fixture is a schema-1 run
        hash_ = store.variants()[-1].hash
        store.set_meta("best", hash_)
        store.record_evaluation(EvalResult(hash_, EvalStatus.SCORED, score=1e308, metrics={
            "loss": math.nan, "curve": [1.0, math.inf], "worst": -math.inf}))
        row = store.variant(hash_)
    assert row is not None
    assert math.isnan(row.metrics["loss"]) and row.metrics["curve"] == [1.0, math.inf]
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        text, curve = db.execute("SELECT metrics, json_extract(metrics, '$.curve[1]') "
                                 "FROM variants WHERE hash = ?", (hash_,)).fetchone()

    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON token {token}")

    assert json.loads(text, parse_constant=refuse)["worst"] == "-Infinity"
    assert curve == "Infinity"
    shown = CliRunner().invoke(cli, ["lineage", "show", str(run_dir)])
    assert shown.exit_code == 0, shown.output
    assert "1e+308" in shown.stdout, shown.stdout
    assert not any(sum(c.isdigit() for c in word) > 20 for word in shown.stdout.split())
