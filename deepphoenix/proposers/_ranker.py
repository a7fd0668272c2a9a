"""`Ranker`: what a composed proposer's batch is made of, from its drawers' candidates.
The built-ins are `AsDrawn` (the first drawer's candidates in the order drawn) and
`SurrogateRanker` (a wide pool ranked by a Gaussian-process surrogate)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from deepphoenix.mutator import Program
from deepphoenix.proposers._distinct import draw_distinct
from deepphoenix.proposers._drawer import Drawer
from deepphoenix.proposers._protocol import Observation
from deepphoenix.proposers._records import Proposal

__all__ = ["Ranker", "draw_slots"]


class Ranker:
    """The base class of every ranker: `select` the batch, learn from `tell`."""

    def select(self, parent: Program, n: int, seed: int, exclude: Collection[str],
               drawers: Sequence[Drawer]) -> list[Proposal]:
        """`n` candidates from `parent`, drawn by `drawers` (the first leads); variants in
        `exclude` count as repeats."""
        raise NotImplementedError(f"{type(self).__name__} does not override select()")

    def tell(self, observations: Sequence[Observation]) -> None:
        """Results of evaluated candidates; the default ignores them."""
        return None

    def pending(self, values: Sequence[Mapping[str, Any]]) -> None:
        """Candidates under evaluation; the default ignores them."""
        return None


def draw_slots(drawer: Drawer, parent: Program, n: int, seed: int,
               exclude: Collection[str] = ()) -> list[Proposal]:
    """`n` slots of `drawer`'s candidates in the order drawn, repeats drawn again up to
    `drawer.rounds` rounds (`draw_distinct`: the rule every proposer keeps)."""
    return draw_distinct(
        lambda round_, k: drawer.draw(parent, n if drawer.whole_rounds else k, seed, round_),
        n, drawer.rounds, exclude)
