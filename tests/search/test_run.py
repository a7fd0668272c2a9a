"""The loop end to end on CPU with real workers: the smoke preset through the CLI, failing
candidates, kill -9 and Ctrl-C with resume, and the exports of a finished run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from deepphoenix.cli import cli
from deepphoenix.engine import Run, preset
from deepphoenix.lineage import (
    best_path,
    build_graph,
    read_gexf,
    read_graphml,
    read_json,
    to_dot,
    write_gexf,
    write_graphml,
    write_json,
)
from deepphoenix.store import RunStore
from tests.lineage.graphs import assert_same_graph
from tests.search.faulty import FAULTY_GRAMMAR, FAULTY_SOURCE


def _variants(run_dir: Path) -> list[tuple[str, str, float | None]]:
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        return [(h, s, None if x is None else round(x, 6)) for h, s, x in db.execute(
            "SELECT hash, status, score FROM variants ORDER BY hash")]


def _evaluated(run_dir: Path) -> int:
    try:
        with sqlite3.connect(run_dir / "run.sqlite") as db:
            return int(db.execute("SELECT COUNT(*) FROM variants WHERE status IN "
                                  "('scored', 'failed')").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_smoke_run_finishes_and_says_where_everything_is(smoke_run) -> None:  # type: ignore[no-untyped-def]
    run_dir, stdout = smoke_run
    assert f"run directory: {run_dir}" in stdout
    assert f"best source:   {run_dir / 'best.py'}" in stdout
    assert "figure1.png" in stdout and "lineage.png" in stdout
    for name in ("run.sqlite", "config.json", "best.py", "summary.json", "plots/figure1.png",
                 "plots/lineage.png", "data/tokenizer.json", "data/pairs.jsonl",
                 "episodes/1/model/model.safetensors", "episodes/2/model/proposer.json"):
        assert (run_dir / name).exists(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["objective"] == "fewshot" and summary["direction"] == "minimize"
    assert summary["best_score"] <= summary["seed_score"]
    assert summary["best_params"] > 0 and summary["seed_params"] > 0
    scored = [loss for _, status, loss in _variants(run_dir) if status == "scored"]
    assert summary["best_score"] == pytest.approx(min(scored))  # greedy ends at the minimum


def test_evaluate_scores_a_file_as_the_run_scored_its_seed(smoke_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`deepphoenix evaluate --preset P` builds its data and its evaluation from the run's
    own settings (the evaluation seed derived from the run seed, the few-shot batch size
    and learning rate, the worker threads), so it gives the seed's score exactly."""
    from deepphoenix.seeds import seed_source

    run_dir, _ = smoke_run
    (tmp_path / "tiny.py").write_text(seed_source("tiny"))
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "tiny.py"), "--preset",
                                      "smoke", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads((run_dir / "summary.json").read_text())
    scored = json.loads(result.stdout)
    assert scored["score"] == pytest.approx(summary["seed_score"], rel=1e-6)
    assert scored["metrics"]["params"] == summary["seed_params"]


def test_store_records_every_attempt(smoke_run) -> None:  # type: ignore[no-untyped-def]
    run_dir, _ = smoke_run
    store = RunStore.open(run_dir)
    try:
        config = store.get_meta("config")
        attempts = store.attempts()
        assert len(attempts) == config["episodes"] * config["batches"] * config["candidates"]
        assert {(a.episode, a.batch) for a in attempts} == {(e, b) for e in (1, 2) for b in (1, 2)}
        variants = {v.hash: v for v in store.variants()}
        for attempt in attempts:
            if attempt.outcome in ("ok", "duplicate"):
                assert variants[attempt.child].status in ("scored", "failed")
        episodes = store.episodes()
        assert len(episodes) == 2
        for episode in episodes:
            assert len(episode["training"]["losses"]) == episode["training"]["steps"] > 0
        batches = store.batches()
        assert len(batches) == 4 and all(b["best"] for b in batches)
        # greedy: each batch's best is its parent or one of its scored children
        for b in batches:
            children = {a.child for a in attempts if (a.episode, a.batch) == (b["episode"],
                                                                               b["batch"])}
            assert b["best"] == b["parent"] or b["best"] in children
        assert store.get_meta("status") == "finished"
    finally:
        store.close()


def test_lineage_show_best_and_plot(smoke_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run_dir, _ = smoke_run
    runner = CliRunner()
    shown = runner.invoke(cli, ["lineage", "show", str(run_dir), "--json"])
    assert shown.exit_code == 0
    path = json.loads(shown.stdout)["path"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert path[0]["hash"] == summary["seed_hash"] and path[-1]["hash"] == summary["best_hash"]
    text = runner.invoke(cli, ["lineage", "show", str(run_dir)])
    assert text.exit_code == 0
    assert text.stdout.splitlines()[:2][0] == "objective: fewshot (lower is better)"
    assert text.stdout.splitlines()[1].startswith("seed ")
    best = runner.invoke(cli, ["lineage", "best", str(run_dir)])
    assert best.stdout == (run_dir / "best.py").read_text()
    plotted = runner.invoke(cli, ["plot", str(run_dir), "-o", str(tmp_path / "p")])
    assert plotted.exit_code == 0
    for name in ("figure1.png", "lineage.png"):
        assert (tmp_path / "p" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("fmt", "writer", "reader"), [
    ("json", write_json, read_json), ("graphml", write_graphml, read_graphml),
    ("gexf", write_gexf, read_gexf),
])
def test_exports_round_trip(smoke_run, tmp_path: Path, fmt, writer, reader) -> None:  # type: ignore[no-untyped-def]
    run_dir, _ = smoke_run
    store = RunStore.open(run_dir)
    graph = build_graph(store)
    store.close()
    path = tmp_path / f"lineage.{fmt}"
    writer(graph, path)
    again = reader(path)
    assert_same_graph(again, graph)
    assert best_path(again) == best_path(graph)


def test_export_cli_and_dot(smoke_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run_dir, _ = smoke_run
    for fmt in ("json", "graphml", "gexf", "dot"):
        out = tmp_path / f"l.{fmt}"
        result = CliRunner().invoke(cli, ["lineage", "export", str(run_dir), "--format", fmt,
                                          "-o", str(out)])
        assert result.exit_code == 0 and out.stat().st_size > 0
    store = RunStore.open(run_dir)
    graph = build_graph(store)
    store.close()
    dot = to_dot(graph)
    assert "\\n" in dot and "\\\\n" not in dot  # Graphviz's line break, not a literal \n
    assert dot.startswith("digraph lineage {") and dot.count("->") == graph.number_of_edges()
    assert "firebrick" in dot  # the best path


def test_failing_candidates_are_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    (tmp_path / "seed.py").write_text(FAULTY_SOURCE)
    (tmp_path / "g.toml").write_text(FAULTY_GRAMMAR)
    config = preset("smoke").with_overrides(
        seed_source=str(tmp_path / "seed.py"), grammar=str(tmp_path / "g.toml"),
        proposer="random", episodes=1, batches=2, candidates=8, timeout=10.0, seed=0)
    run = Run(tmp_path / "run", config)
    summary = run.execute()
    variants = run.store.variants()
    run.close()
    by_fault: dict[str, list] = {"crash": [], "hang": [], "diverge": []}
    for v in variants:
        for fault in by_fault:
            if v.values[fault]:
                by_fault[fault].append(v)
    assert all(by_fault.values()), {k: len(v) for k, v in by_fault.items()}
    for v in by_fault["crash"]:
        assert (v.status, v.stage) == ("failed", "build")
        assert "this candidate raises on purpose" in v.reason
        assert "Traceback" in v.traceback
    for v in by_fault["hang"]:
        assert v.status == "failed" and v.reason.startswith("timeout")
    for v in by_fault["diverge"]:
        assert v.status == "failed" and v.stage in ("smoke", "fewshot")
        assert "non-finite" in v.reason
    assert summary.best_score is not None
    best = next(v for v in variants if v.hash == summary.best_hash)
    assert not (best.values["crash"] or best.values["hang"] or best.values["diverge"])


def _spawn(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "deepphoenix", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(run_dir: Path, evaluations: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 240
    while _evaluated(run_dir) < evaluations:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.2)


def _evaluated_hashes(json_lines: str) -> list[str]:
    return [json.loads(line)["hash"] for line in json_lines.splitlines()
            if line.startswith("{") and json.loads(line).get("event") == "evaluated"]


def test_kill_9_then_resume_loses_and_repeats_nothing(smoke_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    reference, _ = smoke_run  # the uninterrupted run with the same preset and seed
    run_dir = tmp_path / "killed"
    proc = _spawn(["run", "--preset", "smoke", "--run-dir", str(run_dir), "--json"], tmp_path)
    # Into the second episode: the default (learned) proposer has warm-started a stage on
    # the run's hindsight pairs, which the resume must load, not redo differently.
    _wait_for(run_dir, 8, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    before = {h for h, status, _ in _variants(run_dir) if status in ("scored", "failed")}
    assert len(before) >= 5
    resumed = _spawn(["run", "--run-dir", str(run_dir), "--resume", "--json"], tmp_path)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    again = _evaluated_hashes(out)
    assert not before & set(again), "a completed evaluation was repeated"
    assert _variants(run_dir) == _variants(reference)  # nothing lost, same scores
    summary = json.loads(out.splitlines()[-1])
    assert summary["best_hash"] == json.loads(
        (reference / "summary.json").read_text())["best_hash"]


def test_ctrl_c_saves_work_and_says_how_to_resume(tmp_path: Path) -> None:
    run_dir = tmp_path / "interrupted"
    args = ["run", "--preset", "smoke", "--proposer", "random", "--episodes", "1",
            "--run-dir", str(run_dir)]
    proc = _spawn(args, tmp_path)
    _wait_for(run_dir, 3, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert f"resume with: deepphoenix run --run-dir {run_dir} --resume" in err
    assert "Traceback" not in err
    kept = _evaluated(run_dir)
    assert kept >= 3
    resumed = _spawn(["run", "--run-dir", str(run_dir), "--resume"], tmp_path)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "finished in" in out


def test_a_proposer_that_cannot_train_falls_back_and_the_run_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Unit-level: the training job is replaced by one that fails as a worker would.
    from deepphoenix.errors import WorkerError
    from deepphoenix.proposers._t5 import T5Sampler

    def failing_train(*args: object, **kwargs: object) -> None:
        raise WorkerError("training the proposer failed in the worker (error): out of memory")

    monkeypatch.setattr(T5Sampler, "train", classmethod(lambda cls, *a, **k: failing_train()))
    events: list[str] = []
    run = Run(tmp_path / "run", preset("smoke").with_overrides(episodes=1, batches=1),
              on_event=lambda e: events.append(e.kind))
    summary = run.execute()
    attempts = run.store.attempts()
    episode = run.store.episode(1)
    run.close()
    assert "proposer_failed" in events
    assert {a.proposer for a in attempts} == {"random-fallback"}
    assert episode is not None and "out of memory" in episode["training"]["failed"]
    assert summary.evaluations >= 2


@pytest.mark.slow  # ~1.5 min; the default run resumes smoke, constraint, project and
# user-objective runs killed with -9
def test_a_tpe_run_killed_with_9_resumes_to_the_same_result(tmp_path: Path) -> None:
    args = ["run", "--preset", "smoke", "--proposer", "tpe", "--batches", "1", "--json"]
    reference = tmp_path / "reference"
    done = _spawn([*args, "--run-dir", str(reference)], tmp_path)
    _, err = done.communicate(timeout=600)
    assert done.returncode == 0, err
    run_dir = tmp_path / "killed"
    proc = _spawn([*args, "--run-dir", str(run_dir)], tmp_path)
    _wait_for(run_dir, 5, proc)  # past the first batch: the history is non-empty
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    resumed = _spawn(["run", "--run-dir", str(run_dir), "--resume", "--json"], tmp_path)
    _out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert _variants(run_dir) == _variants(reference)
    with RunStore.open(reference) as store:
        assert {a.proposer for a in store.attempts()} == {"tpe"}
