"""Search strategies: which program to propose from, and which one to keep.

A strategy subclasses `Strategy` (a `name`, ``parent(best, seed)`` and
``select(best, candidates, direction)``, greedy's by default; the class flag `steady` says
it proposes without batch barriers, which the run reads once to choose its loop). Built-ins
register here; third parties register a subclass or an instance of one under the
``deepphoenix.strategies`` entry-point group.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from deepphoenix.errors import ConfigError
from deepphoenix.objectives import Direction
from deepphoenix.registry import Registry

__all__ = ["Async", "BestOfN", "Greedy", "Scored", "Strategy", "best_of", "get_strategy",
           "strategy_names"]

ENTRY_POINT_GROUP = "deepphoenix.strategies"


@dataclass(frozen=True, slots=True)
class Scored:
    """A variant and its score (None if it was not scored)."""

    hash: str
    score: float | None


class Strategy:
    """The base class of every search strategy: which variant the next batch is proposed
    from (`parent`) and which one is kept after it (`select`); the defaults are greedy's.
    `steady`: no batch barrier (one candidate whenever a worker frees, `AsyncLoop`)."""

    name: str = ""
    steady: ClassVar[bool] = False

    def parent(self, best: str, seed: str) -> str:
        """The variant the next batch is proposed from."""
        return best

    def select(self, best: Scored, candidates: Sequence[Scored],
               direction: Direction = Direction.MINIMIZE) -> Scored:
        """The variant kept after a batch."""
        return best_of(best, candidates, direction)


def best_of(best: Scored, candidates: Sequence[Scored],
            direction: Direction = Direction.MINIMIZE) -> Scored:
    """The best score in `direction` among the current best and the scored candidates;
    the current best wins ties and stays when every candidate is worse (or none was
    scored)."""
    chosen = best
    for candidate in candidates:
        if candidate.score is None:
            continue
        if chosen.score is None or direction.better(candidate.score, chosen.score):
            chosen = candidate
    return chosen


class Greedy(Strategy):
    """The paper's greedy search: propose from the best so far; keep a candidate only if
    its score is better (the base class's rules)."""

    name = "greedy"


class BestOfN(Greedy):
    """Best-of-N sampling: every candidate is proposed from the seed; the best one seen is
    kept (Greedy's rule). The baseline that tells whether iterating helps."""

    name = "best-of-n"

    def parent(self, best: str, seed: str) -> str:
        return seed


class Async(Greedy):
    """Steady-state asynchronous search (``--strategy async``): no batch barrier. Whenever
    an evaluation worker frees, one candidate is proposed from a parent chosen by
    `tournament` and started at once; each result is told to the proposer as it arrives.
    The best is the best full-fidelity score seen, kept as greedy keeps it. Run by
    `AsyncLoop`."""

    name = "async"
    steady = True

    @staticmethod
    def tournament(pool: Sequence[Scored], k: int, direction: Direction,
                   rng: random.Random) -> str:
        """The parent of the next candidate: a binary tournament among the `k` best
        scored variants (two drawn with replacement, the better kept; ties to the
        earlier-ranked). It leans on the best without proposing every candidate from one
        program; with one scored variant it is that variant (greedy)."""
        sign = 1.0 if direction is Direction.MINIMIZE else -1.0
        ranked = sorted((sign * s.score, i, s.hash) for i, s in enumerate(pool)
                        if s.score is not None)
        if not ranked:
            raise ValueError("a tournament needs at least one scored variant")
        top = ranked[:max(1, k)]
        first, second = rng.randrange(len(top)), rng.randrange(len(top))
        return top[min(first, second)][2]


STRATEGIES: Registry[object] = Registry("strategy", ENTRY_POINT_GROUP)
STRATEGIES.register("greedy", Greedy)
STRATEGIES.register("best-of-n", BestOfN)
STRATEGIES.register("async", Async)


def strategy_names() -> list[str]:
    return STRATEGIES.names()


def get_strategy(name: str) -> Strategy:
    """A strategy instance: registered classes are instantiated, instances used as is."""
    found = STRATEGIES.get(name)
    strategy = found() if isinstance(found, type) else found
    if not isinstance(strategy, Strategy):
        raise ConfigError(f"strategy {name!r} is a {type(strategy).__name__}, not a "
                          "deepphoenix.engine.Strategy (subclass it)")
    return strategy
