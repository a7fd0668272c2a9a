"""`DistinctVariants`: distinct accepted variants of a program, drawn by a `Refiner`
(``deepphoenix programs`` and the tests' exhaustive walks)."""

from __future__ import annotations

import random
from collections.abc import Iterator

from deepphoenix.mutator import Mutation, Program
from deepphoenix.outcome import Outcome
from deepphoenix.proposers._refiner import Refiner

__all__ = ["DistinctVariants"]


class DistinctVariants:
    """Distinct accepted variants of a program, drawn until `n` or the draws stall.

    Iterate for the variants; afterwards `exhausted` says whether fewer than `n` exist
    within the proposer's reach (no new variant in `stall` consecutive draws).
    """

    def __init__(self, proposer: Refiner, program: Program, n: int,
                 rng: random.Random, stall: int = 2_000) -> None:
        self.proposer, self.program, self.n, self.rng, self.stall = proposer, program, n, rng, stall
        self.exhausted = False
        self.draws = 0
        self.rejected: dict[Outcome, int] = {}

    def __iter__(self) -> Iterator[Mutation]:
        seen = {self.program.hash}
        produced = 0
        since_new = 0
        while produced < self.n:
            if since_new >= self.stall:
                self.exhausted = True
                return
            self.draws += 1
            since_new += 1
            edits = self.proposer.draw_edits(self.program, self.rng)
            if edits is None:
                self.exhausted = True
                return
            if not edits:
                continue
            mutation = self.program.apply(edits)
            if not mutation.ok or mutation.variant is None:
                self.rejected[mutation.outcome] = self.rejected.get(mutation.outcome, 0) + 1
                continue
            if mutation.variant.hash in seen:
                continue
            seen.add(mutation.variant.hash)
            produced += 1
            since_new = 0
            yield mutation
