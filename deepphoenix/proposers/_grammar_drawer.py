"""`GrammarDrawer`: the grammar's random refinements as a drawer (``random``, the pool's
``draw`` companion in ``learned``, ``random-gp``). Each candidate is one refinement of
the parent: a site picked by weight, moved by its operator; with `sites_changed`, single
moves chained until a drawn number of sites differ (``random-gp-multi``)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from deepphoenix.mutator import Mutation, Program, format_edit_script
from deepphoenix.proposers._drawer import Drawer
from deepphoenix.proposers._records import Proposal
from deepphoenix.proposers._refiner import Refiner

__all__ = ["GrammarDrawer"]


class GrammarDrawer(Drawer):
    """Random in-domain refinements of the parent. `sites_changed`: the share of draws
    that change 1, 2, ... sites (None: one move a draw, the grammar's refinement
    distribution; given, the count is drawn first, even ``(1.0,)``). A batch draws from
    one generator seeded by its seed; later rounds continue it."""

    def __init__(self, rounds: int = 4, sites_changed: Sequence[float] | None = None,
                 source: str = "") -> None:
        self.rounds = rounds
        self.sites_changed = tuple(sites_changed) if sites_changed is not None else None
        self.source = source
        self.refiner = Refiner(max_edits=1)
        self.rng = random.Random(0)

    def draw(self, parent: Program, n: int, seed: int, round_: int = 0) -> list[Proposal]:
        if round_ == 0:
            self.rng = random.Random(seed)
        return [self.one(parent, self.rng) for _ in range(n)]

    def one(self, parent: Program, rng: random.Random) -> Proposal:
        """One refinement of `parent` drawn with `rng`."""
        mutation = None
        if self.sites_changed is not None:
            wanted = rng.choices(range(1, len(self.sites_changed) + 1),
                                 weights=self.sites_changed)[0]
            if wanted > 1:
                mutation = self._chained(parent, wanted, rng)
        if mutation is None:
            mutation = self.refiner.refine(parent, rng)
        variant = mutation.variant
        text = format_edit_script(parent, variant.changes) if variant is not None else ""
        return Proposal(mutation, text, self.source)

    def _chained(self, parent: Program, wanted: int, rng: random.Random) -> Mutation | None:
        """Single-site moves chained until `wanted` sites differ from the parent (or the
        moves stall); None when none moved."""
        start = parent.values
        names = [spec.name for spec in parent.proposable]
        values = dict(start)
        for _ in range(4 * wanted):
            step = self.refiner.refine_values(parent, values, rng)
            if step is None:
                break
            values = step[0]
            if sum(values.get(k) != start.get(k) for k in names) >= wanted:
                break
        edits = {k: values[k] for k in names if values.get(k) != start.get(k)}
        return parent.apply(edits) if edits else None
