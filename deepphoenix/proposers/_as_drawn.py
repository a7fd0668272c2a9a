"""`AsDrawn`: the ranker that ranks nothing. The batch is the lead drawer's candidates in
the order drawn, repeats drawn again (``random``, ``t5``, ``t5-only``, ``tpe``, ``gp``)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from deepphoenix.errors import ConfigError
from deepphoenix.mutator import Program
from deepphoenix.proposers._drawer import Drawer
from deepphoenix.proposers._ranker import Ranker, draw_slots
from deepphoenix.proposers._records import Proposal

__all__ = ["AsDrawn"]


class AsDrawn(Ranker):
    """The first drawer's candidates, as drawn; it takes one drawer."""

    def select(self, parent: Program, n: int, seed: int, exclude: Collection[str],
               drawers: Sequence[Drawer]) -> list[Proposal]:
        if len(drawers) != 1:
            raise ConfigError(f"the as-drawn ranker takes one drawer, not {len(drawers)}")
        return draw_slots(drawers[0], parent, n, seed, exclude)
