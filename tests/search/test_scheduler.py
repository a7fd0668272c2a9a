"""The asynchronous loop's decisions (`engine/_scheduler.py`), with made-up results and a
made-up clock: no worker, no proposer, no database. Which evaluation goes up a rung and
when, what a stopped candidate is told (in its objective's unit), how many proposals an
episode has and when the time is up, each proposal's parent, and the run's best."""

from __future__ import annotations

from deepphoenix.engine import RunConfig
from deepphoenix.engine._scheduler import Scheduler, SteadyScheduler
from deepphoenix.engine._strategy import Scored
from deepphoenix.objectives import Direction, resolve_objective


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
