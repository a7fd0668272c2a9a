"""The asynchronous loop's decisions (`engine/_scheduler.py`), with made-up results and a
made-up clock: no worker, no proposer, no database. Which evaluation goes up a rung and
when, what a stopped candidate is told (in its objective's unit), how many proposals an
episode has and when the time is up, each proposal's parent, and the run's best. Then the
driver over a real run directory with a made-up evaluator: a run stopped as an evaluation
starts resumes to the uninterrupted run, and a pruned quine is told its rung in steps."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from deepphoenix.engine import RunConfig, RunDir, get_strategy
from deepphoenix.engine._async import make_loop
from deepphoenix.engine._scheduler import Scheduler, SteadyScheduler
from deepphoenix.engine._strategy import Scored
from deepphoenix.evaluator import EvalResult, EvalStatus
from deepphoenix.objectives import Direction, resolve_objective
from deepphoenix.proposers import ProposerContext, get_proposer
from deepphoenix.store import RunStore
from tests.search import synthetic


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _finish(scheduler: Scheduler, rung: int, scores: dict[str, float | None]) -> None:
    for hash_, score in scores.items():
        scheduler.start(hash_, rung)
        scheduler.finish(hash_, rung, score)


def test_promotion_takes_each_rungs_top_share_best_first_and_the_highest_rung_first(
) -> None:
    rungs = Scheduler([1, 3, 9], 3, Direction.MINIMIZE, "steps")
    _finish(rungs, 0, {"a": 5.0, "b": 1.0, "c": 3.0})
    assert rungs.promotion() == ("b", 1)  # 3 results: the best one goes up
    rungs.start("b", 1)
    assert rungs.promotion() is None  # b is already up; c is not in the top third
    _finish(rungs, 0, {"d": 2.0, "e": None, "f": 4.0})  # 6 results: the top two go up
    assert rungs.promotion() == ("d", 1)
    rungs.start("d", 1)
    _finish(rungs, 1, {"b": 0.5, "d": 0.7, "x": 0.9})  # rung 1 full enough: it goes first
    assert rungs.promotion() == ("b", 2)
    rungs.start("b", 2)
    assert rungs.promotion() is None
    # a batch promotes only its own candidates
    fresh = Scheduler([1, 3, 9], 3, Direction.MINIMIZE, "steps")
    _finish(fresh, 0, {"a": 5.0, "b": 1.0, "c": 3.0, "d": 2.0, "e": 9.0, "f": 8.0})
    assert fresh.promotion({"d", "e"}) == ("d", 1)
    assert fresh.promotion({"e", "f"}) is None
    # maximizing turns the ranking round
    up = Scheduler([1, 3, 9], 3, Direction.MAXIMIZE, "steps")
    _finish(up, 0, {"a": 5.0, "b": 1.0, "c": 3.0})
    assert up.promotion() == ("a", 1)


def test_the_top_rung_is_the_end_and_full_fidelity_has_no_rungs() -> None:
    rungs = Scheduler([1, 3], 3, Direction.MINIMIZE, "rows")
    _finish(rungs, 1, {"a": 1.0, "b": 2.0, "c": 3.0})
    assert rungs.promotion() is None  # nothing goes above the full evaluation
    assert rungs.stops_early(0, scored=True) and not rungs.stops_early(1, scored=True)
    assert not rungs.stops_early(0, scored=False)  # a failure is a failure, not a stop
    assert (rungs.rung_of(0), rungs.rung_of(1)) == (0, 1)
    assert rungs.stop_reason(0, 2.5) == "1 rows: score 2.5 (for now)"
    full = Scheduler(None, 3, Direction.MINIMIZE, "rows")
    _finish(full, 0, {"a": 1.0, "b": 2.0, "c": 3.0})
    assert full.top == 0 and full.promotion() is None
    assert not full.stops_early(0, scored=True) and full.rung_of(0) is None


def test_a_pruned_quine_is_told_its_rung_in_steps() -> None:
    # self-replication's rungs are the training steps its train reports (max_steps), not
    # rows of task data: the unit comes from the objective table, never from "built-in"
    objective = resolve_objective("self-replication")
    config = RunConfig(objective="self-replication", fidelity="asha", max_steps=90)
    for scheduler in (Scheduler.for_run(config, objective),
                      SteadyScheduler.for_run(config, objective)):
        assert scheduler.resources == [10, 30, 90]
        assert scheduler.stop_reason(0, 0.25) == "10 steps: score 0.25 (for now)"
    fewshot = RunConfig(fidelity="asha", fewshot_samples=90)
    rows = Scheduler.for_run(fewshot, resolve_objective("fewshot"))
    assert rows.stop_reason(1, 3.0) == "30 rows: score 3 (for now)"


def test_an_episode_has_its_proposals_and_the_time_limit_stops_new_ones() -> None:
    clock = _Clock()
    steady = SteadyScheduler(None, 3, Direction.MINIMIZE, "steps", proposals=3, pool=2,
                             seed=0, time_limit=5.0, clock=clock)
    assert [steady.proposals_left(step) for step in range(5)] == [True] * 3 + [False] * 2
    clock.now = 104.9
    assert not steady.time_up() and steady.stopped == ""
    clock.now = 105.0
    assert steady.time_up() and steady.stopped == "time limit of 5 s"
    assert steady.time_up()  # it stays up
    endless = Scheduler(None, 3, Direction.MINIMIZE, "steps", clock=clock)
    clock.now = 1e9
    assert not endless.time_up() and endless.stopped == ""


def test_parents_are_drawn_from_the_best_full_scores_seeded_by_episode_and_step() -> None:
    steady = SteadyScheduler(None, 3, Direction.MINIMIZE, "steps", proposals=10, pool=2,
                             seed=7)
    steady.know(Scored("seed", 5.0), [Scored("seed", 5.0)])
    assert {steady.parent(1, step) for step in range(1, 20)} == {"seed"}  # the only one
    for hash_, score in (("a", 1.0), ("b", 2.0), ("c", 3.0)):
        steady.finish(hash_, 0, score)
    picks = [steady.parent(1, step) for step in range(1, 200)]
    assert set(picks) == {"a", "b"}  # a tournament among the pool (2) best
    assert picks.count("a") > picks.count("b")
    assert picks == [steady.parent(1, step) for step in range(1, 200)]  # seeded
    assert [steady.parent(2, step) for step in range(1, 200)] != picks  # by the episode


def test_the_best_is_the_best_full_score_and_only_a_full_score() -> None:
    steady = SteadyScheduler([1, 3], 3, Direction.MINIMIZE, "steps", proposals=9, pool=3,
                             seed=0)
    steady.know(Scored("seed", 2.0), [Scored("seed", 2.0)])
    assert steady.best("anything") == "seed"
    assert not steady.finish("a", 0, 0.1)  # a lower rung's score never becomes the best
    assert steady.best("seed") == "seed"
    assert not steady.finish("b", 1, 2.0)  # a tie: the seed stays
    assert not steady.finish("c", 1, None)  # a failure
    assert steady.finish("d", 1, 1.5)  # the new best, said when it arrives
    assert not steady.finish("e", 1, 1.7)
    assert steady.best("seed") == "d"
    # a batch strategy keeps its own choice
    batches = Scheduler([1, 3], 3, Direction.MINIMIZE, "steps")
    assert not batches.finish("d", 1, 0.0) and batches.best("x") == "x"


def test_a_resume_knows_the_full_scores_recorded_before() -> None:
    steady = SteadyScheduler(None, 3, Direction.MINIMIZE, "steps", proposals=9, pool=1,
                             seed=0)
    steady.know(Scored("seed", 2.0), [Scored("seed", 2.0), Scored("a", 1.0)])
    assert steady.best("seed") == "a" and steady.parent(1, 1) == "a"
    assert not steady.finish("b", 0, 1.2)  # worse than the recorded best


# -- the driver, with a made-up evaluator --------------------------------------------------


class _Stop(Exception):
    """The process "dies" (a crash or Ctrl-C) as an evaluation starts."""


class _Scores:
    """An evaluator that answers at once with a score made from the hash (a unit test's
    stand-in for the sandboxed workers: the driver's bookkeeping is what is tested);
    `dies_at`: the start it raises at."""

    def __init__(self, dies_at: int = 0) -> None:
        self.resources: list[int | None] = []
        self.dies_at = dies_at

    @staticmethod
    def _result(hash_: str) -> EvalResult:
        return EvalResult(hash_, EvalStatus.SCORED, score=int(hash_[:6], 16) % 97 / 10)

    def evaluate(self, jobs: list[tuple[str, str]]) -> list[EvalResult]:
        return [self._result(h) for h, _source in jobs]

    def submit(self, hash_: str, source: str, resource: int | None) -> Future[EvalResult]:
        self.resources.append(resource)
        if len(self.resources) == self.dies_at:
            raise _Stop
        future: Future[EvalResult] = Future()
        future.set_result(self._result(hash_))
        return future


def _quines(folder: Path, strategy: str) -> RunConfig:
    """A self-replication run over the synthetic program (the made-up evaluator never runs
    the objective; a quine's own source would only make the test slower)."""
    synthetic.write(folder)
    return RunConfig(seed_source=str(folder / "prog.py"), grammar=str(folder / "g.toml"),
                     objective="self-replication", proposer="random", strategy=strategy,
                     fidelity="asha", max_steps=90, workers=1, episodes=2, batches=3,
                     candidates=3)


def _drive(run: RunDir, scores: _Scores,
           events: list[tuple[str, dict[str, Any]]] | None = None) -> str:
    try:
        proposer = get_proposer(run.config.proposer, ProposerContext(
            run_dir=run.path, executor=None, seed=run.config.seed))  # type: ignore[arg-type]
        loop = make_loop(run, proposer, scores,  # type: ignore[arg-type]
                         get_strategy(run.config.strategy),
                         lambda event: events.append((event.kind, event.fields))
                         if events is not None else None)
        return loop.execute()
    finally:
        run.close()


def _decided(run_dir: Path) -> tuple[Any, ...]:
    """Everything a run decided: variants, rung results and attempts, without clocks."""
    with RunStore.open(run_dir) as store:
        return ([(v.hash, v.status, v.stage, v.score, v.reason) for v in store.variants()],
                sorted((r["hash"], r["rung"], r["resource"], r["status"], r["score"])
                       for r in store.rungs()),
                [(a.episode, a.batch, a.slot, a.parent, a.child, a.outcome)
                 for a in store.attempts()],
                [(b["episode"], b["batch"], b["parent"], b["best"]) for b in store.batches()])


@pytest.mark.parametrize("strategy", ["async", "greedy"])
@pytest.mark.parametrize("dies_at", [3, 8, 20])
def test_a_run_stopped_as_an_evaluation_starts_resumes_to_the_uninterrupted_run(
        tmp_path: Path, strategy: str, dies_at: int) -> None:
    config = _quines(tmp_path, strategy)
    best = _drive(RunDir.create(tmp_path / "reference", config), _Scores())
    with pytest.raises(_Stop):
        _drive(RunDir.create(tmp_path / "stopped", config), _Scores(dies_at))
    with RunStore.open(tmp_path / "stopped") as store:
        assert any(r["status"] == "running" for r in store.rungs())  # left in flight
    assert _drive(RunDir.open(tmp_path / "stopped"), _Scores()) == best
    assert _decided(tmp_path / "stopped") == _decided(tmp_path / "reference")


def test_the_driver_prunes_a_quine_in_steps_within_its_budget(tmp_path: Path) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    scores = _Scores()
    _drive(RunDir.create(tmp_path / "run", _quines(tmp_path, "async")), scores, events)
    with RunStore.open(tmp_path / "run") as store:
        variants = store.variants()
        attempts = store.attempts()
    assert len({(a.episode, a.batch) for a in attempts}) == 18  # E x B x C proposals
    assert set(scores.resources) <= {10, 30, 90} and 10 in scores.resources
    pruned = [v for v in variants if v.status == "pruned"]
    assert pruned and all("steps)" in v.reason and "rows" not in v.reason for v in pruned)
    said = [f["reason"] for kind, f in events if kind == "evaluated" and f["status"] == "pruned"]
    assert said and all(r.split(":")[0] in ("10 steps", "30 steps") for r in said)
