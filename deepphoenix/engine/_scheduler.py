"""The decisions of the asynchronous loop, apart from its workers and its database.

A `Scheduler` knows where every evaluation stands on the rungs (`--fidelity asha`; at full
fidelity there is one rung, the full evaluation), which one goes up next (the promotion
rule of `_fidelity`), what a candidate stopped early is told (its rung's budget in the
objective's one fidelity unit, `ObjectiveSpec.unit`) and whether the run's time is up.
A greedy (or best-of-n) run with rungs uses it as is: its batches are its own.
`SteadyScheduler` adds what ``--strategy async`` decides: how many proposals an episode
has, each proposal's parent (a seeded tournament among the best full scores) and the
run's best (the best full score seen).

`AsyncLoop` (`_async`) drives one: it starts what the scheduler says while workers are
free, waits for a result, tells the scheduler and records it. Nothing here touches a
worker, a proposer or the database, so every decision is unit-tested with made-up results.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Self

from deepphoenix.engine._config import RunConfig
from deepphoenix.engine._fidelity import RungResult, promotable
from deepphoenix.engine._rundir import derive_seed
from deepphoenix.engine._strategy import Async, Scored, best_of
from deepphoenix.objectives import Direction, ObjectiveSpec

__all__ = ["Scheduler", "SteadyScheduler"]

Clock = Callable[[], float]


class Scheduler:
    """The rungs, the promotions and the time budget of one run.

    `resources`: each rung's budget, smallest first (None: full fidelity, one rung);
    `unit`: what a budget counts (``rows`` or ``steps``); `time_limit`: seconds after which
    no new candidate starts (None: no limit)."""

    def __init__(self, resources: Sequence[int] | None, eta: int, direction: Direction,
                 unit: str, time_limit: float | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.resources: list[int | None] = list(resources) if resources is not None else [None]
        self.top = len(self.resources) - 1  # the full evaluation's rung
        self.eta = eta
        self.direction = direction
        self.unit = unit
        self.time_limit = time_limit
        self.clock = clock
        self.deadline = clock() + time_limit if time_limit is not None else None
        self.stopped = ""  # why the run ended before its budget (the time limit)
        self.results: list[RungResult] = []  # finished evaluations, in the order told
        self.started: set[tuple[str, int]] = set()  # (hash, rung) ever started

    @classmethod
    def for_run(cls, config: RunConfig, objective: ObjectiveSpec) -> Self:
        """The scheduler of a run: its config's rungs and time limit, its objective's
        direction and fidelity unit."""
        return cls(config.rungs(), config.eta, objective.direction, objective.unit,
                   config.time_limit)

    # -- what the driver tells it ------------------------------------------------------------
    def start(self, hash_: str, rung: int) -> None:
        """An evaluation of `hash_` at `rung` started (or was read back as started)."""
        self.started.add((hash_, rung))

    def finish(self, hash_: str, rung: int, score: float | None) -> bool:
        """An evaluation finished (`score` None: it failed). Whether it is the run's new
        best (only a strategy that keeps the best of every result, `SteadyScheduler`,
        says so: a batch strategy chooses at its batch's end)."""
        self.results.append(RungResult(hash_, rung, score))
        return False

    # -- what it decides -------------------------------------------------------------------
    def promotion(self, allowed: set[str] | None = None) -> tuple[str, int] | None:
        """The next evaluation to start above a finished one, as (hash, its new rung), or
        None: the best waiting result in its rung's top ``1/eta``, highest rung first.
        `allowed`: only these candidates (a batch promotes only its own)."""
        if self.top == 0:
            return None
        promoted = {(h, r - 1) for h, r in self.started if r > 0}
        found = promotable(self.results, promoted, self.eta, self.direction, self.top,
                           allowed)
        return None if found is None else (found[0], found[1] + 1)

    def stops_early(self, rung: int, scored: bool) -> bool:
        """Whether a result is a stop below the full evaluation (``pruned`` for now: a
        later promotion may bring it back); a failure is a failure at any rung."""
        return scored and rung < self.top

    def stop_reason(self, rung: int, score: float) -> str:
        """What a candidate stopped at `rung` is told: the rung's budget, in the unit the
        objective's rungs count, and its score there."""
        return f"{self.resources[rung]} {self.unit}: score {score:.4g} (for now)"

    def rung_of(self, rung: int) -> int | None:
        """The rung a proposer is told a full result came from (None at full fidelity)."""
        return rung if self.resources[rung] is not None else None

    def time_up(self) -> bool:
        """Whether the time limit has passed (then `stopped` says so, from the first time)."""
        if self.deadline is None or self.clock() < self.deadline:
            return False
        if not self.stopped:
            self.stopped = f"time limit of {self.time_limit:g} s"
        return True

    def best(self, current: str) -> str:
        """The run's best, given the one the batches chose (`current`): a batch strategy
        keeps its own choice."""
        return current


class SteadyScheduler(Scheduler):
    """``--strategy async``: `proposals` candidates an episode, one whenever a worker is free
    and no promotion waits; each from a seeded binary tournament among the `pool` best full
    scores (`Async.tournament`); the run's best is the best full score seen, the seed on
    ties (the earliest stays)."""

    def __init__(self, resources: Sequence[int] | None, eta: int, direction: Direction,
                 unit: str, *, proposals: int, pool: int, seed: int,
                 time_limit: float | None = None, clock: Clock = time.monotonic) -> None:
        super().__init__(resources, eta, direction, unit, time_limit, clock)
        self.proposals = proposals
        self.pool = pool
        self.seed = seed
        self.full: dict[str, float] = {}  # every full score, in the order recorded
        self.leader = Scored("", None)  # the best of the seed and `full` (see `know`)

    @classmethod
    def for_run(cls, config: RunConfig, objective: ObjectiveSpec) -> Self:
        c = config
        return cls(c.rungs(), c.eta, objective.direction, objective.unit,
                   proposals=c.batches * c.candidates, pool=c.candidates, seed=c.seed,
                   time_limit=c.time_limit)

    def know(self, origin: Scored, full: Iterable[Scored]) -> None:
        """The seed program and every full score recorded so far, in order (a resume)."""
        self.full = {s.hash: s.score for s in full if s.score is not None}
        self.leader = best_of(origin, self.scored(), self.direction)

    def finish(self, hash_: str, rung: int, score: float | None) -> bool:
        super().finish(hash_, rung, score)
        if rung != self.top or score is None:
            return False
        self.full[hash_] = score
        self.leader = best_of(self.leader, [Scored(hash_, score)], self.direction)
        return self.leader.hash == hash_

    def proposals_left(self, step: int) -> bool:
        """Whether the episode, `step` proposals in, may propose another (the time limit
        aside: `time_up`)."""
        return step < self.proposals

    def parent(self, episode: int, step: int) -> str:
        """The parent of the episode's `step`-th proposal (seeded by the run, the episode and
        the step, so a resume draws the same one)."""
        rng = random.Random(derive_seed(self.seed, "parent", episode, step))
        return Async.tournament(self.scored(), self.pool, self.direction, rng)

    def scored(self) -> list[Scored]:
        return [Scored(h, s) for h, s in self.full.items()]

    def best(self, current: str) -> str:
        return self.leader.hash
