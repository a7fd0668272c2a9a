"""Sampling a batch without replacement: the one rule every proposer follows for
candidates that repeat another, so learned and random proposers compare at an equal
evaluation budget."""

from __future__ import annotations

from collections.abc import Callable, Collection

from deepphoenix.mutator import Mutation
from deepphoenix.outcome import Outcome
from deepphoenix.proposers._random import Proposal

__all__ = ["draw_distinct"]

Draw = Callable[[int, int], list[Proposal]]


def draw_distinct(draw: Draw, n: int, rounds: int,
                  exclude: Collection[str] = ()) -> list[Proposal]:
    """`n` candidates from `draw(round, k)` (fresh candidates for `k` open slots; it may
    give more). A candidate that repeats an earlier one, or whose variant is in `exclude`,
    is marked `DUPLICATE` and its slot drawn again, up to `rounds` draws in all; slots are
    refilled in order. Rejected candidates keep their slot: they are the proposer's own
    failures."""
    proposals: list[Proposal] = []
    seen: set[str] = set(exclude)
    for round_ in range(rounds):
        repeats = [i for i, p in enumerate(proposals)
                   if p.mutation.outcome is Outcome.DUPLICATE]
        if round_ and not repeats:
            break
        for fresh in draw(round_, len(repeats) if round_ else n):
            variant = fresh.mutation.variant
            if fresh.mutation.ok and variant is not None and variant.hash in seen:
                reason = ("a variant already evaluated in this run" if variant.hash in exclude
                          else "same variant as an earlier candidate of this batch")
                fresh = Proposal(Mutation(Outcome.DUPLICATE, reason, variant), fresh.text)
            placed = round_ == 0 or (fresh.mutation.ok and bool(repeats))
            if round_ == 0:
                proposals.append(fresh)
            elif placed:
                proposals[repeats.pop(0)] = fresh
            if placed and fresh.mutation.ok and variant is not None:
                seen.add(variant.hash)
    return proposals
