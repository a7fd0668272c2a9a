"""The built-in proposers, each a configuration of drawers and a ranker (`Composition`):

=================== ==================================================== ============
name                drawers (the first leads; `source` recorded)         ranker
=================== ==================================================== ============
``random``          grammar refinements                                  as drawn
``t5``              T5, the paper's training (whole source)              as drawn
``learned``         T5, hindsight training (``t5``); GP sampler          surrogate
                    (``gp``); grammar refinements (``draw``)
``t5-only``         T5, hindsight training                               as drawn
``random-gp``       grammar refinements, one site a draw                 surrogate
``random-gp-multi`` grammar refinements, as many sites as the T5 moves   surrogate
``tpe`` / ``gp``    Optuna's TPE / GP sampler                            as drawn
=================== ==================================================== ============

``learned``: sample widely (``max(8 x C, 32)`` T5 samples a batch), add ``C`` of the GP
sampler's suggestions and ``C`` grammar draws, and evaluate the ``C`` the surrogate ranks
best; its floor is then the GP's, its ceiling what the T5 adds. ``random-gp``,
``random-gp-multi`` and ``t5-only`` are its ablations (no T5; no T5 but its multi-site
moves; no surrogate). The T5 proposers fall back to the grammar's refinements, named
``random-fallback`` in the lineage, when their model cannot train or sample.
"""

from __future__ import annotations

from collections.abc import Sequence

from deepphoenix.proposers._as_drawn import AsDrawn
from deepphoenix.proposers._composition import Composition, DrawerFactory
from deepphoenix.proposers._gp_drawer import GPDrawer
from deepphoenix.proposers._grammar_drawer import GrammarDrawer
from deepphoenix.proposers._hindsight_training import HindsightTraining
from deepphoenix.proposers._paper_training import PaperTraining
from deepphoenix.proposers._protocol import ProposerContext, register_proposer
from deepphoenix.proposers._ranker import Ranker
from deepphoenix.proposers._surrogate_ranker import SurrogateRanker
from deepphoenix.proposers._t5_drawer import T5Drawer
from deepphoenix.proposers._tpe_drawer import TPEDrawer

__all__ = [
    "BUILTIN",
    "T5_SITES_CHANGED",
    "GPProposer",
    "HindsightProposer",
    "PaperT5Proposer",
    "RandomGPMultiProposer",
    "RandomGPProposer",
    "RandomProposer",
    "T5OnlyProposer",
    "TPEProposer",
    "gp_sampler",
    "grammar_draws",
    "hindsight_t5",
    "paper_t5",
    "tpe_sampler",
]

# Share of the T5's accepted samples that change 1, 2, 3 proposable sites: the tiny
# seed's source-format T5 under default decoding (`bench_proposer.py`, "sites changed
# 1 / 2 / 3+" in benchmarks/RESULTS.md: 59% / 32% / 9%). The edits format writes one site.
T5_SITES_CHANGED = (0.59, 0.32, 0.09)


# -- the parts, as factories of a run's context ----------------------------------------
def grammar_draws(rounds: int | None = None, sites_changed: Sequence[float] | None = None,
                  source: str = "") -> DrawerFactory:
    """The grammar's refinements (`GrammarDrawer`); `rounds` None: the run's draw rounds."""
    return lambda ctx: GrammarDrawer(ctx.draw_rounds if rounds is None else rounds,
                                     sites_changed, source)


def tpe_sampler(source: str = "") -> DrawerFactory:
    """Optuna's TPE sampler (`TPEDrawer`)."""
    return lambda ctx: TPEDrawer(ctx.direction, ctx.draw_rounds, source)


def gp_sampler(source: str = "") -> DrawerFactory:
    """Optuna's GP sampler (`GPDrawer`)."""
    return lambda ctx: GPDrawer(ctx.direction, ctx.draw_rounds, source)


def paper_t5(proposer: str) -> DrawerFactory:
    """The T5 trained as the paper trains it (`T5Drawer` with `PaperTraining`)."""
    return lambda ctx: T5Drawer(ctx, PaperTraining(), proposer)


def hindsight_t5(proposer: str, source: str = "") -> DrawerFactory:
    """The T5 warm-started on the run's improving pairs (`HindsightTraining`)."""
    return lambda ctx: T5Drawer(ctx, HindsightTraining(ctx.direction), proposer, source)


def _as_drawn(ctx: ProposerContext) -> Ranker:
    return AsDrawn()


def _surrogate(ctx: ProposerContext) -> Ranker:
    return SurrogateRanker(ctx.direction)


# -- the table -------------------------------------------------------------------------
RandomProposer = Composition("random", (grammar_draws(),), _as_drawn)
PaperT5Proposer = Composition("t5", (paper_t5("t5"),), _as_drawn, fallback=RandomProposer,
                              needs_refinement_data=True)
HindsightProposer = Composition(
    "learned", (hindsight_t5("learned", "t5"), gp_sampler("gp"),
                grammar_draws(rounds=1, source="draw")),
    _surrogate, fallback=RandomProposer, needs_refinement_data=True, reads_view=True,
    accepts_init=True)
T5OnlyProposer = HindsightProposer.with_parts(name="t5-only",
                                              drawers=(hindsight_t5("t5-only"),),
                                              ranker=_as_drawn)
RandomGPProposer = Composition("random-gp", (grammar_draws(sites_changed=(1.0,)),),
                               _surrogate)
RandomGPMultiProposer = RandomGPProposer.with_parts(
    name="random-gp-multi", drawers=(grammar_draws(sites_changed=T5_SITES_CHANGED),))
TPEProposer = Composition("tpe", (tpe_sampler(),), _as_drawn)
GPProposer = Composition("gp", (gp_sampler(),), _as_drawn)

BUILTIN = (RandomProposer, PaperT5Proposer, HindsightProposer, T5OnlyProposer,
           RandomGPProposer, RandomGPMultiProposer, TPEProposer, GPProposer)

for _composition in BUILTIN:
    register_proposer(_composition.name, _composition)
