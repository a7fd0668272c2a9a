"""Sampling a batch without replacement: the one rule every proposer follows for
candidates that repeat another, so learned and random proposers compare at an equal
evaluation budget."""

from __future__ import annotations

from collections.abc import Callable, Collection

from deepphoenix.mutator import Mutation
from deepphoenix.outcome import Outcome
from deepphoenix.proposers._records import Proposal

__all__ = ["as_repeat", "draw_distinct", "round_seed"]

Draw = Callable[[int, int], list[Proposal]]


def round_seed(seed: int, round_: int) -> int:
    """The seed of draw round `round_` of a batch seeded `seed` (round 0: `seed`)."""
    return seed if round_ == 0 else (seed + 1_000_003 * round_) % 2**31


def as_repeat(mutation: Mutation, exclude: Collection[str]) -> Mutation:
    """A valid candidate whose variant was met before, marked `DUPLICATE` with why: in
    `exclude` (evaluated earlier in the run) or earlier in this batch."""
    variant = mutation.variant
    if not mutation.ok or variant is None:
        return mutation
    reason = ("a variant already evaluated in this run" if variant.hash in exclude
              else "same variant as an earlier candidate of this batch")
    return Mutation(Outcome.DUPLICATE, reason, variant)


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
                fresh = Proposal(as_repeat(fresh.mutation, exclude), fresh.text)
            placed = round_ == 0 or (fresh.mutation.ok and bool(repeats))
            if round_ == 0:
                proposals.append(fresh)
            elif placed:
                proposals[repeats.pop(0)] = fresh
            if placed and fresh.mutation.ok and variant is not None:
                seen.add(variant.hash)
    return proposals
