"""`Composition`: a proposer as configuration. A composition names drawer factories (the
first leads), a ranker factory, a fallback and the flags the run reads before it builds
the proposer; calling it with a run's `ProposerContext` builds the `ComposedProposer`.
The built-in proposers (`_builtin`) are compositions, so an ablation is a row of
configuration, not a subclass."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from deepphoenix.proposers._composed_proposer import ComposedProposer
from deepphoenix.proposers._drawer import Drawer
from deepphoenix.proposers._protocol import ProposerContext
from deepphoenix.proposers._ranker import Ranker

__all__ = ["Composition", "DrawerFactory", "RankerFactory"]

DrawerFactory = Callable[[ProposerContext], Drawer]
RankerFactory = Callable[[ProposerContext], Ranker]


@dataclass(frozen=True)
class Composition:
    """A proposer factory made of parts. `fallback`: what proposes when the lead drawer
    cannot (None: nothing; its errors propagate). The flags are `Proposer`'s class-level
    declarations (`needs_refinement_data`, `reads_view`, `accepts_init`)."""

    name: str
    drawers: tuple[DrawerFactory, ...]
    ranker: RankerFactory
    fallback: Composition | None = None
    needs_refinement_data: bool = False
    reads_view: bool = False
    accepts_init: bool = False

    def __call__(self, ctx: ProposerContext | None = None,
                 rounds: int | None = None) -> ComposedProposer:
        """The proposer for a run. `ctx` None: one outside any run (no worker, no
        refinement data: enough for the grammar's and Optuna's drawers); `rounds`: the
        draw rounds for repeats instead of the context's."""
        if ctx is not None and not isinstance(ctx, ProposerContext):
            raise TypeError(f"the {self.name} proposer is built from a ProposerContext, not "
                            f"{ctx!r} (the grammar's refinement operator, once "
                            "RandomProposer(max_edits), is Refiner(max_edits))")
        if ctx is None:
            ctx = ProposerContext(run_dir=Path("."), executor=_NO_EXECUTOR, seed=0)
        if rounds is not None:
            ctx = replace(ctx, draw_rounds=rounds)
        return ComposedProposer(self.name, [make(ctx) for make in self.drawers],
                                self.ranker(ctx), ctx,
                                self.fallback(ctx) if self.fallback is not None else None)

    def with_parts(self, **changes: Any) -> Composition:
        """This composition with some fields replaced (a new row of the table)."""
        return replace(self, **changes)


_NO_EXECUTOR: Any = None  # a proposer made outside a run has no worker to ask for
