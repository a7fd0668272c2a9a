"""`SurrogateRanker`: sample widely, then rank. The lead drawer draws `width(n)`
candidates a round into a pool of valid, new ones; each further drawer (a companion) adds
its own `n` slots; the batch is the `n` of the pool that a Gaussian-process surrogate
fitted on the run's scored variants ranks best (`_pool.rank`: expected improvement,
kriging believer between picks, the constraint model's feasibility first; before three
are scored, the pool's order). ``learned`` ranks its T5's samples with the GP sampler's
suggestions and the grammar's draws; ``random-gp`` ranks the grammar's draws alone.

Companion `i` (0 the first after the lead) draws from the batch seed
``round_seed(seed, i << 20)``, so no two share a stream."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from deepphoenix.mutator import Program
from deepphoenix.objectives import Direction
from deepphoenix.proposers._distinct import round_seed
from deepphoenix.proposers._drawer import Drawer
from deepphoenix.proposers._pool import gather, rank, record, width
from deepphoenix.proposers._protocol import Observation
from deepphoenix.proposers._ranker import Ranker, draw_slots
from deepphoenix.proposers._records import Proposal

__all__ = ["SurrogateRanker"]


class SurrogateRanker(Ranker):
    """Ranks a wide pool by a surrogate of the run's scores (see the module's docstring).
    Its state is the observations it was told (replayed on resume)."""

    def __init__(self, direction: Direction | str = Direction.MINIMIZE) -> None:
        self.sign = Direction.parse(direction).sign
        self.observed: list[Observation] = []
        self.running: list[dict[str, Any]] = []  # values being evaluated (async runs)

    def select(self, parent: Program, n: int, seed: int, exclude: Collection[str],
               drawers: Sequence[Drawer]) -> list[Proposal]:
        lead, *companions = drawers
        pool, rest = gather(lambda round_: lead.draw(parent, width(n), seed, round_), n,
                            lead.rounds, exclude)
        if companions:
            pool += self.companions(parent, n, seed, {*exclude, *_hashes(pool)}, companions)
        chosen = [pool[i] for i in self.rank(parent, pool, n)]
        return (chosen + rest)[:n]

    def companions(self, parent: Program, n: int, seed: int, exclude: Collection[str],
                   drawers: Sequence[Drawer]) -> list[Proposal]:
        """`n` slots of each drawer, those valid and new, for the pool."""
        found: list[Proposal] = []
        seen = set(exclude)
        drawn = [p for i, drawer in enumerate(drawers)
                 for p in draw_slots(drawer, parent, n, round_seed(seed, i << 20), exclude)]
        for proposal in drawn:
            variant = proposal.mutation.variant
            if proposal.mutation.ok and variant is not None and variant.hash not in seen:
                seen.add(variant.hash)
                found.append(proposal)
        return found

    def rank(self, parent: Program, pool: Sequence[Proposal], n: int) -> list[int]:
        """Indices into `pool` of the `n` candidates to evaluate."""
        return rank(parent, self.observed, self.sign, pool, n, self.running)

    def tell(self, observations: Sequence[Observation]) -> None:
        record(self.observed, observations)  # a candidate told again replaces its earlier

    def pending(self, values: Sequence[Mapping[str, Any]]) -> None:
        """Candidates under evaluation (--strategy async): the surrogate believes its own
        mean at each before it ranks, so a new pick moves away from them."""
        self.running = [dict(v) for v in values]


def _hashes(pool: Sequence[Proposal]) -> list[str]:
    return [p.mutation.variant.hash for p in pool if p.mutation.variant is not None]
