"""`lineage export --format optuna`: an Optuna study that `optuna.load_study` reads back."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from deepphoenix.cli import cli
from deepphoenix.lineage import write_optuna

LEGACY = Path(__file__).parent.parent / "fixtures" / "legacy_v1" / "partial"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(LEGACY, target)
    return target


def _rows(run_dir: Path) -> list[tuple[str, str, float | None]]:
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        column = "score" if any(r[1] == "score" for r in db.execute(
            "PRAGMA table_info(variants)")) else "mean_loss"
        return [(r[0], r[1], r[2]) for r in db.execute(
            f"SELECT hash, status, {column} FROM variants")]


def _load(path: Path) -> optuna.Study:
    return optuna.load_study(study_name=None, storage=f"sqlite:///{path}")


def test_round_trip_one_complete_trial_per_scored_variant(run_dir: Path,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "study.db"
    result = CliRunner().invoke(cli, ["lineage", "export", str(run_dir), "--format",
                                      "optuna", "-o", str(out)])
    assert result.exit_code == 0, result.output
    study = _load(out)
    rows = _rows(run_dir)
    scored = {h: s for h, status, s in rows if status == "scored"}
    complete = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(complete) == len(scored) > 0
    assert {t.user_attrs["hash"]: t.value for t in complete} == scored
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert study.best_value == min(scored.values())
    trial = complete[0]
    # the t5 grammar's domains, not only what was observed
    assert trial.distributions["num_layers"] == optuna.distributions.IntDistribution(1, 8)
    assert trial.distributions["d_ff"] == optuna.distributions.IntDistribution(64, 4096)
    assert trial.params["d_model"] == 128 and trial.user_attrs["params_count"] > 0
    assert f"{len(scored)} complete trials, 0 failed trials" in result.output


def test_failures_are_failed_trials_and_direction_is_the_runs(run_dir: Path,
                                                             tmp_path: Path) -> None:
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        victim = db.execute("SELECT hash FROM variants WHERE status = 'scored' "
                            "ORDER BY created_at DESC LIMIT 1").fetchone()[0]
        db.execute("UPDATE variants SET status = 'failed', stage = 'smoke', reason = "
                   "'out of memory', mean_loss = NULL WHERE hash = ?", (victim,))
        db.execute("INSERT OR REPLACE INTO meta VALUES ('objective', ?)", (json.dumps(
            {"name": "accuracy", "direction": "maximize"}),))
    out = tmp_path / "study.db"
    done = write_optuna(run_dir, out)
    study = _load(out)
    failed = study.get_trials(states=[optuna.trial.TrialState.FAIL])
    assert [t.user_attrs["hash"] for t in failed] == [victim] and done.failed == 1
    assert failed[0].user_attrs["stage"] == "smoke"
    assert failed[0].user_attrs["reason"] == "out of memory"
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    scores = [s for _, status, s in _rows(run_dir) if status == "scored"]
    assert study.best_value == max(s for s in scores if s is not None)


def test_refuses_to_overwrite_without_force(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "study.db"
    out.write_text("keep me")
    args = ["lineage", "export", str(run_dir), "--format", "optuna", "-o", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {out} exists; pass --force to replace it"
    assert out.read_text() == "keep me"
    assert CliRunner().invoke(cli, [*args, "--force"]).exit_code == 0
    assert len(_load(out).trials) > 0


def test_unwritable_target_is_named(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "missing-dir" / "sub" / "study.db"
    (tmp_path / "missing-dir").write_text("a file, not a directory")
    result = CliRunner().invoke(cli, ["lineage", "export", str(run_dir), "--format",
                                      "optuna", "-o", str(out)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {out}: ")
    assert ".tmp" not in result.stderr


def test_optuna_dashboard_serves_the_study(run_dir: Path, tmp_path: Path) -> None:
    """optuna-dashboard's own API (its WSGI app, no server) lists the study's trials."""
    import io

    dashboard = pytest.importorskip("optuna_dashboard",
                                    reason="optuna-dashboard is not installed")
    out = tmp_path / "study.db"
    done = write_optuna(run_dir, out)
    app = dashboard.wsgi(optuna.storages.RDBStorage(f"sqlite:///{out}"))

    def get(path: str) -> dict[str, object]:
        status: list[str] = []
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "",
                   "SERVER_NAME": "localhost", "SERVER_PORT": "80",
                   "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
                   "wsgi.input": io.BytesIO(), "wsgi.errors": io.StringIO()}
        body = b"".join(app(environ, lambda s, h, e=None: status.append(s)))
        assert status == ["200 OK"], body[:300]
        return json.loads(body)  # type: ignore[no-any-return]

    (summary,) = get("/api/studies")["study_summaries"]  # type: ignore[misc]
    assert summary["study_name"] == done.study_name and summary["directions"] == ["minimize"]
    study = get(f"/api/studies/{summary['study_id']}")
    states = [t["state"] for t in study["trials"]]  # type: ignore[attr-defined]
    assert states.count("Complete") == done.complete
