"""The learned proposer with one part taken away, to measure what each part adds:

* ``random-gp``: no T5. The learned proposer's wide sample (`width`) is drawn from the
  grammar's random refinements (one site moved) and ranked by the same Gaussian-process
  surrogate (`rank`).
* ``random-gp-multi``: as ``random-gp``, but each draw changes as many sites as the T5's
  samples do (`T5_SITES_CHANGED`), so that "the T5 learned something" is not confused
  with "the T5 moves several sites at once".
* ``t5-only``: no surrogate. The learned proposer's T5 (warm-started, trained on
  hindsight pairs), whose samples are evaluated in the order drawn, `C` per batch.

Like the others, none keeps state that only lives in memory: ``random-gp``'s draws depend
only on the batch's seed and its ranking only on the replayed observations.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from deepphoenix.mutator import Program, format_edit_script
from deepphoenix.proposers._builtin import PaperT5Proposer
from deepphoenix.proposers._lineage import HindsightProposer
from deepphoenix.proposers._pool import gather, rank, record, width
from deepphoenix.proposers._protocol import (
    Observation,
    Proposer,
    ProposerContext,
    register_proposer,
)
from deepphoenix.proposers._random import RandomProposer
from deepphoenix.proposers._records import Proposal

__all__ = ["T5_SITES_CHANGED", "RandomGPMultiProposer", "RandomGPProposer", "T5OnlyProposer"]

# Share of the T5's accepted samples that change 1, 2, 3 proposable sites: the tiny
# seed's source-format T5 under default decoding (`bench_proposer.py`, "sites changed
# 1 / 2 / 3+" in benchmarks/RESULTS.md: 59% / 32% / 9%). The edits format writes one site.
T5_SITES_CHANGED = (0.59, 0.32, 0.09)


class RandomGPProposer(Proposer):
    """The grammar's random refinements, drawn as widely as the learned proposer samples
    and ranked by its surrogate. `sites_changed`: the share of draws that change 1, 2, ...
    sites (default: one site, the grammar's refinement distribution)."""

    name = "random-gp"

    def __init__(self, ctx: ProposerContext,
                 sites_changed: Sequence[float] = (1.0,)) -> None:
        self.sign = ctx.direction.sign
        self.rounds = ctx.draw_rounds
        self.sites_changed = tuple(sites_changed)
        self.refiner = RandomProposer(max_edits=1)
        self.observed: list[Observation] = []
        self.running: list[dict[str, Any]] = []  # values being evaluated (async runs)

    def propose(self, parent: Program, n: int, seed: int,
                exclude: Collection[str] = ()) -> list[Proposal]:
        rng = random.Random(seed)

        def draw(_round: int) -> list[Proposal]:
            return [self._draw(parent, rng) for _ in range(width(n))]

        pool, rest = gather(draw, n, self.rounds, exclude)
        chosen = [pool[i] for i in rank(parent, self.observed, self.sign, pool, n,
                                        self.running)]
        return (chosen + rest)[:n]

    def _draw(self, parent: Program, rng: random.Random) -> Proposal:
        """One refinement of `parent` that changes a drawn number of sites: single-site
        moves chained until that many sites differ from the parent (or the moves stall)."""
        wanted = rng.choices(range(1, len(self.sites_changed) + 1),
                             weights=self.sites_changed)[0]
        mutation = None
        if wanted > 1:
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
            if edits:
                mutation = parent.apply(edits)
        if mutation is None:
            mutation = self.refiner.refine(parent, rng)
        variant = mutation.variant
        text = format_edit_script(parent, variant.changes) if variant is not None else ""
        return Proposal(mutation, text)

    def observe(self, observations: Sequence[Observation]) -> None:
        # As the learned proposer does (a candidate told again replaces its earlier one).
        record(self.observed, observations)

    def pending(self, values: Sequence[Mapping[str, Any]]) -> None:
        """Candidates under evaluation (--strategy async): the surrogate believes its own
        mean at each before it ranks."""
        self.running = [dict(v) for v in values]


class RandomGPMultiProposer(RandomGPProposer):
    """``random-gp`` whose draws change as many sites as the T5's samples."""

    name = "random-gp-multi"

    def __init__(self, ctx: ProposerContext) -> None:
        super().__init__(ctx, T5_SITES_CHANGED)


class T5OnlyProposer(HindsightProposer):
    """The learned proposer without its surrogate: `C` samples of its T5 per batch (repeats
    drawn again, as ``t5`` does), evaluated in the order drawn."""

    NAME = "t5-only"
    name = NAME

    _sample = PaperT5Proposer._sample


register_proposer("random-gp", RandomGPProposer)
register_proposer("random-gp-multi", RandomGPMultiProposer)
register_proposer("t5-only", T5OnlyProposer)
