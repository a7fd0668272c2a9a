"""`--strategy async` and `--fidelity asha`: the rung arithmetic, the promotion rule, the
parent tournament, the bad values, `ctx.should_stop()`, and real runs on real workers
(the synthetic objective trains nothing, so a run costs its workers' start): a fixed seed
with one worker is the same run twice, killed with -9 and resumed or not; two workers
on an executor that only has the batch seam; a greedy run whose batches climb rungs."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from deepphoenix.cli import cli
from deepphoenix.engine import Async, Run, RunConfig, Scored, preset, rung_resources
from deepphoenix.engine._config import PRESETS
from deepphoenix.engine._fidelity import RungResult, promotable
from deepphoenix.engine._strategy import STRATEGIES, get_strategy
from deepphoenix.errors import ConfigError, UnknownNameError
from deepphoenix.executor import EXECUTORS, Executor, ExecutorSettings, LocalExecutor
from deepphoenix.objectives import Direction
from deepphoenix.objectives._user import ObjectiveContext, ObjectiveUsageError, call_objective
from deepphoenix.proposers._protocol import proposer_names
from deepphoenix.proposers._surrogate import Surrogate
from deepphoenix.sandbox import JobResult
from deepphoenix.store import RunStore
from tests.search import synthetic
from tests.search.test_run import _spawn

# -- rungs and promotion ------------------------------------------------------------------


def test_rungs_grow_by_eta_and_end_at_the_whole_budget() -> None:
    assert rung_resources(256, 3) == [29, 87, 256]
    assert rung_resources(256, 4) == [16, 64, 256]
    assert rung_resources(1024, 4, first=4) == [4, 16, 64, 256, 1024]
    assert rung_resources(10, 3, first=5) == [5, 10]  # one step up passes the top


@pytest.mark.parametrize(("top", "eta", "first", "message"), [
    (256, 1, None, "eta >= 2"),
    (256, 3, 300, "larger than the whole budget"),
    (256, 3, 256, "at least two rungs"),
    (256, 3, 0, "min_resource"),
])
def test_bad_rungs_say_what_is_wrong(top: int, eta: int, first: int | None,
                                     message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        rung_resources(top, eta, first)


def _results(rung: int, scores: Iterable[float | None]) -> list[RungResult]:
    return [RungResult(f"h{rung}-{i}", rung, s) for i, s in enumerate(scores)]


def test_promotion_takes_the_top_share_of_a_rung_highest_rung_first() -> None:
    results = _results(0, [5.0, 1.0, 3.0, None, 2.0, 4.0])  # quota 6 // 3 = 2
    assert promotable(results, set(), 3, Direction.MINIMIZE, 2) == ("h0-1", 0)
    assert promotable(results, {("h0-1", 0)}, 3, Direction.MINIMIZE, 2) == ("h0-4", 0)
    assert promotable(results, {("h0-1", 0), ("h0-4", 0)}, 3, Direction.MINIMIZE, 2) is None
    assert promotable(results, set(), 3, Direction.MAXIMIZE, 2) == ("h0-0", 0)
    # fewer results than eta: nobody is in a top third yet
    assert promotable(results[:2], set(), 3, Direction.MINIMIZE, 2) is None
    # a higher rung's candidate goes first
    upper = _results(1, [0.5, 0.7, 0.9])
    assert promotable(results + upper, set(), 3, Direction.MINIMIZE, 2) == ("h1-0", 1)
    # the top rung is never promoted from
    assert promotable(upper, set(), 3, Direction.MINIMIZE, 1) is None
    # a batch promotes only its own
    assert promotable(results, set(), 3, Direction.MINIMIZE, 2, {"h0-4"}) == ("h0-4", 0)


def test_failures_rank_last_but_fill_the_rung() -> None:
    results = _results(0, [None, None, 9.0])
    assert promotable(results, set(), 3, Direction.MINIMIZE, 1) == ("h0-2", 0)


def test_the_tournament_draws_from_the_k_best_and_is_seeded() -> None:
    pool = [Scored(f"v{i}", float(i)) for i in range(10)] + [Scored("none", None)]
    picks = [Async.tournament(pool, 3, Direction.MINIMIZE, random.Random(s))
             for s in range(200)]
    assert set(picks) == {"v0", "v1", "v2"}
    assert picks.count("v0") > picks.count("v2")  # the better wins more tournaments
    again = [Async.tournament(pool, 3, Direction.MINIMIZE, random.Random(s))
             for s in range(200)]
    assert picks == again
    assert Async.tournament(pool, 3, Direction.MAXIMIZE, random.Random(0)) in {
        "v9", "v8", "v7"}
    assert Async.tournament(pool, 1, Direction.MINIMIZE, random.Random(5)) == "v0"


# -- bad values ---------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "error", "message"), [
    ({"fidelity": "sha"}, UnknownNameError, "Unknown fidelity 'sha'"),
    ({"fidelity": "asha", "eta": 1}, ConfigError, "eta"),
    ({"fidelity": "asha", "min_resource": 10_000}, ConfigError, "larger than the whole"),
    ({"fidelity": "asha", "objective": "x.py:f"}, ConfigError, "--max-steps"),
    ({"time_limit": 5.0}, ConfigError, "--strategy async"),
    ({"strategy": "asink"}, UnknownNameError, "Did you mean 'async'"),
])
def test_bad_config_values_are_one_clear_error(changes: dict[str, Any], error: type,
                                               message: str) -> None:
    with pytest.raises(error, match=message):
        RunConfig.from_dict({**preset("smoke").to_dict(), **changes})


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_takes_both_options_with_every_proposer(name: str) -> None:
    """`--strategy async` and `--fidelity asha` are accepted on every preset with every
    proposer, and the rungs end at the preset's whole budget."""
    base = preset(name)
    for proposer in proposer_names():
        for strategy in ("greedy", "async"):
            config = RunConfig.from_dict({**base.to_dict(), "proposer": proposer,
                                          "strategy": strategy, "fidelity": "asha"})
            rungs = config.rungs()
            assert rungs is not None and len(rungs) == 3
            assert rungs[-1] == config.fidelity_budget()[0] >= 1


def test_asha_on_a_user_objective_without_max_steps_names_the_objective() -> None:
    with pytest.raises(ConfigError, match=r"objective 'x\.py:f' needs --max-steps"):
        RunConfig.from_dict({**preset("cpu").to_dict(), "objective": "x.py:f",
                             "fidelity": "asha"})


@pytest.mark.parametrize("args", [
    ["--fidelity", "bogus"],
    ["--fidelity", "asha", "--eta", "1"],
    ["--fidelity", "asha", "--min-resource", "5000"],
    ["--time-limit", "10"],
])
def test_the_cli_says_one_line_and_runs_nothing(tmp_path: Path, args: list[str]) -> None:
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(cli, ["run", "--preset", "smoke", "--run-dir", str(run_dir),
                                      *args])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) <= 3
    assert not run_dir.exists()


# -- ctx.should_stop ----------------------------------------------------------------------


def test_should_stop_turns_true_at_the_budget_and_refuses_after_the_evaluation(
        tmp_path: Path) -> None:
    full = ObjectiveContext("cpu", 0, tmp_path)
    full.report(10_000, 1.0)
    assert not full.should_stop()  # full fidelity: never
    ctx = ObjectiveContext("cpu", 0, tmp_path, stop_step=3)
    assert not ctx.should_stop()  # nothing reported yet
    seen = []

    def objective(program: Any, ctx: ObjectiveContext) -> float:
        for step in range(1, 100):
            ctx.report(step, 1.0 / step)
            if ctx.should_stop():
                seen.append(step)
                break
        return 1.0 / step

    score, _ = call_objective(objective, {}, ctx)
    assert seen == [3] and score == pytest.approx(1 / 3) and ctx.asked_to_stop
    with pytest.raises(ObjectiveUsageError, match="after the objective's evaluation ended"):
        ctx.should_stop()


# -- pending candidates -------------------------------------------------------------------


def test_pending_points_are_believed_as_if_picked_earlier_in_one_batch() -> None:
    """Ranking with W candidates pending is ranking the rest of one batch of W+n: what the
    greedy loop does inside a batch, so async workers do not get W near-copies."""
    changed = 0
    for seed in range(40):
        rng = random.Random(seed)
        x = [[rng.random(), rng.random()] for _ in range(8)]
        y = [rng.random() for _ in range(8)]
        candidates = [[rng.random(), rng.random()] for _ in range(6)]
        batch = Surrogate(x, y).choose(candidates, 3)
        pending = batch[0]
        rest = [i for i in range(6) if i != pending]
        believed = Surrogate(x, y).choose([candidates[i] for i in rest], 2,
                                          believed=[candidates[pending]])
        blind = Surrogate(x, y).choose([candidates[i] for i in rest], 2)
        assert [rest[i] for i in believed] == batch[1:]
        changed += believed != blind
    assert changed >= 5  # the pending point does move picks


# -- real runs ----------------------------------------------------------------------------


def _rows(run_dir: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        return list(db.execute(query))


def _outcome(run_dir: Path) -> tuple[list[tuple[Any, ...]], ...]:
    """Everything a run decided: variants with scores, rung results, attempts in order."""
    return (
        _rows(run_dir, "SELECT hash, status, stage, round(score, 9) FROM variants ORDER BY hash"),
        _rows(run_dir, "SELECT hash, rung, resource, status, round(score, 9) FROM rungs "
                       "ORDER BY hash, rung"),
        _rows(run_dir, "SELECT episode, batch, slot, parent, child, outcome FROM attempts "
                       "ORDER BY episode, batch, slot"),
    )


@pytest.fixture(scope="module")
def synthetic_args(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("synthetic")
    return [*synthetic.write(folder, steps=9, pause=0.05), "--proposer", "tpe",
            "--strategy", "async", "--fidelity", "asha", "--max-steps", "9",
            "--episodes", "2", "--batches", "3", "--candidates", "3", "--workers", "1",
            "--seed", "11", "--json"]


@pytest.mark.slow  # three runs of about 35 s each on two cores
def test_one_worker_async_asha_killed_with_9_resumes_to_the_uninterrupted_run(
        synthetic_args: list[str], tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    done = _spawn([*synthetic_args, "--run-dir", str(reference)], tmp_path)
    _, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    variants, rungs, attempts = _outcome(reference)
    assert {r[3] for r in rungs} == {"scored"}
    assert any(v[1] == "pruned" and v[2].startswith("rung ") and v[3] is None
               for v in variants)
    assert {r[1] for r in rungs} == {0, 1, 2}  # someone reached the full evaluation

    run_dir = tmp_path / "killed"
    proc = _spawn([*synthetic_args, "--run-dir", str(run_dir)], tmp_path)
    finished: list[tuple[Any, ...]] = []
    deadline = time.monotonic() + 240
    while len(finished) < 6:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.1)
        try:
            finished = _rows(run_dir, "SELECT hash, rung, finished_at, score FROM rungs "
                                      "WHERE status != 'running'")
        except sqlite3.Error:
            finished = []
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    finished = _rows(run_dir, "SELECT hash, rung, finished_at, score FROM rungs "
                              "WHERE status != 'running'")
    resumed = _spawn(["run", "--run-dir", str(run_dir), "--resume", "--json"], tmp_path)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    after = _rows(run_dir, "SELECT hash, rung, finished_at, score FROM rungs")
    assert set(finished) <= set(after), "a finished evaluation was run again or lost"
    assert _outcome(run_dir) == (variants, rungs, attempts)  # the same run, bit for bit


class _BatchOnly(Executor):
    """The local executor without its own `submit`: a third party's executor that overrides
    only the batch seam (and the lane), which the asynchronous loop must still drive
    through the base class's default `submit`."""

    name = "batch-only"

    def __init__(self, settings: ExecutorSettings) -> None:
        super().__init__(settings)
        self.inner = LocalExecutor(settings)

    def run_all(self, jobs: Iterable[Any], on_progress: Any = None,
                ) -> Iterator[tuple[Any, JobResult]]:
        return self.inner.run_all(jobs, on_progress=on_progress)

    def lane(self, name: str) -> Any:
        return self.inner.lane(name)

    def close(self) -> None:
        self.inner.close()
        super().close()


def _config(folder: Path, **changes: Any) -> RunConfig:
    synthetic.write(folder, steps=9)
    return RunConfig(
        seed_source=str(folder / "prog.py"), grammar=str(folder / "g.toml"),
        objective=f"{folder / 'score.py'}:evaluate", proposer="random", episodes=1,
        batches=3, candidates=4, max_steps=9, timeout=60.0,
        **{"fidelity": "asha", **changes})


def test_two_workers_on_a_batch_only_executor_keep_every_rule(tmp_path: Path) -> None:
    EXECUTORS.register("batch-only", _BatchOnly)
    config = _config(tmp_path, strategy="async", workers=2, executor="batch-only")
    events: list[str] = []
    run = Run(tmp_path / "run", config, on_event=lambda e: events.append(e.kind))
    try:
        summary = run.execute()
        rows = run.store.rungs()
        variants = {v.hash: v for v in run.store.variants()}
    finally:
        run.close()
    assert {r["status"] for r in rows} == {"scored"}
    assert next(r["resource"] for r in rows if r["rung"] == 0) == 1  # 9 / 3**2
    by_rung: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_rung.setdefault(row["rung"], []).append(row)
    # every promotion was in the top 1/eta of its rung when it happened: at the end, each
    # candidate at rung k+1 scored within the best of rung k
    for rung, above in by_rung.items():
        if rung == 0:
            continue
        below = sorted(r["score"] for r in by_rung[rung - 1])
        for row in above:
            mine = next(r["score"] for r in by_rung[rung - 1] if r["hash"] == row["hash"])
            assert below.index(mine) < len(below) // 3 + len(above)
    tops = {r["hash"] for r in by_rung.get(2, [])}
    for hash_, variant in variants.items():
        if hash_ == summary.seed_hash:
            continue
        if hash_ in tops:
            assert variant.status == "scored" and variant.score is not None
        elif variant.status == "pruned":
            assert variant.score is None and variant.stage.startswith("rung ")
    assert summary.best_hash in tops | {summary.seed_hash}
    assert "promoted" in events and "proposed" in events
    shown = CliRunner().invoke(cli, ["lineage", "show", str(tmp_path / "run"), "--json"])
    assert shown.exit_code == 0, shown.output
    stopped = sum(1 for v in variants.values() if v.status == "pruned")
    assert stopped and sum(json.loads(shown.stdout)["pruned"].values()) == stopped
    # 12 candidates proposed, one per step (a batch row each)
    with RunStore.open(tmp_path / "run") as store:
        assert len({(a.episode, a.batch) for a in store.attempts()}) == 12


@pytest.mark.slow
def test_greedy_batches_climb_the_rungs(tmp_path: Path) -> None:
    config = _config(tmp_path, strategy="greedy", workers=2)
    run = Run(tmp_path / "run", config)
    try:
        summary = run.execute()
        rows = run.store.rungs()
        batches = run.store.batches()
    finally:
        run.close()
    assert len(batches) == 3 and all(b["finished_at"] is not None for b in batches)
    assert {r["rung"] for r in rows} >= {0}
    best = summary.best_hash
    assert best == summary.seed_hash or any(r["hash"] == best and r["rung"] == 2
                                            for r in rows)


# -- what proposers are told --------------------------------------------------------------


def test_tpe_sees_pending_as_running_and_a_higher_rung_replaces_a_lower_one() -> None:
    from deepphoenix.grammar import parse_grammar
    from deepphoenix.mutator import parse_program
    from deepphoenix.proposers import Observation, ProposerContext, TPEProposer
    from deepphoenix.proposers._tpe import site_distributions

    program = parse_program(synthetic.PROGRAM, parse_grammar(synthetic.GRAMMAR))
    tpe = TPEProposer(ProposerContext(run_dir=Path("."), executor=None, seed=0))  # type: ignore[arg-type]
    tpe.observe([Observation("p", "a", {"width": 5, "rate": 0.1}, "pruned", None, 0, 2.0),
                 Observation("p", "b", {"width": 9, "rate": 0.2}, "scored", 1.0)])
    tpe.observe([Observation("p", "a", {"width": 5, "rate": 0.1}, "scored", 0.5, 1, 0.5)])
    tpe.pending([{"width": 20, "rate": 0.4}])
    study = tpe.drawers[0].study(site_distributions(list(program.proposable)), 0)
    states = sorted(t.state.name for t in study.trials)
    assert states == ["COMPLETE", "COMPLETE", "RUNNING"]  # "a" once, at its later rung
    assert sorted(t.value for t in study.trials if t.value is not None) == [0.5, 1.0]
    tpe.observe([Observation("p", "c", {"width": 7, "rate": 0.7}, "pruned", None, 0, 3.0)])
    study = tpe.drawers[0].study(site_distributions(list(program.proposable)), 0)
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert len(pruned) == 1 and pruned[0].intermediate_values == {0: 3.0}


def test_a_time_limit_stops_new_candidates_and_the_run_ends_with_what_it_has(
        tmp_path: Path) -> None:
    config = _config(tmp_path, strategy="async", workers=1, fidelity="full",
                     time_limit=0.001)
    events: list[str] = []
    run = Run(tmp_path / "run", config, on_event=lambda e: events.append(e.kind))
    try:
        summary = run.execute()
        attempts = run.store.attempts()
        episode = run.store.episode(1)
    finally:
        run.close()
    assert "time_limit" in events and summary.best_hash == summary.seed_hash
    assert attempts == [] and episode is None  # nothing started after the limit


# -- the loop is chosen by the strategy object, once ----------------------------------------


class _Patient(Async):
    """A third party's strategy without batch barriers, under a name of its own."""

    name = "patient"


def test_a_strategy_without_barriers_under_another_name_runs_without_barriers(
        tmp_path: Path) -> None:
    STRATEGIES.register("patient", _Patient)
    try:
        config = _config(tmp_path, strategy="patient", workers=1, fidelity="full",
                         time_limit=0.001)  # a time limit is a steady strategy's budget
        events: list[str] = []
        run = Run(tmp_path / "run", config, on_event=lambda e: events.append(e.kind))
        try:
            summary = run.execute()
        finally:
            run.close()
    finally:
        STRATEGIES.unregister("patient")
    assert "time_limit" in events and summary.best_hash == summary.seed_hash


def test_a_strategy_that_is_not_a_strategy_is_one_clear_error() -> None:
    class Loose:  # the old protocol's shape, without the base class
        name = "loose"

        def parent(self, best: str, seed: str) -> str:
            return best

    STRATEGIES.register("loose", Loose)
    try:
        with pytest.raises(ConfigError, match=r"not a deepphoenix\.engine\.Strategy"):
            get_strategy("loose")
    finally:
        STRATEGIES.unregister("loose")
