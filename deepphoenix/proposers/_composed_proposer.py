"""`ComposedProposer`: a proposer made of drawers and a ranker (see `Composition`, which
builds one from a run's context). Every built-in but none is one; a third party may
compose its own the same way."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from deepphoenix.errors import WorkerError
from deepphoenix.mutator import Program
from deepphoenix.proposers._drawer import Drawer
from deepphoenix.proposers._protocol import Observation, Proposer, ProposerContext
from deepphoenix.proposers._ranker import Ranker
from deepphoenix.proposers._records import Proposal

__all__ = ["ComposedProposer"]


class ComposedProposer(Proposer):
    """Drawers (the first leads) and a ranker, as one `Proposer`: `propose` asks the
    ranker to select a batch from the drawers' candidates; `observe` and `pending` tell
    every drawer and the ranker; `begin_episode` lets the drawers train.

    When the lead drawer cannot draw (a T5 that failed to train or to sample), the batch
    comes from `fallback` (the grammar's refinements), and `name` says
    ``random-fallback`` for it in the lineage; `failure` says why."""

    FALLBACK = "random-fallback"

    def __init__(self, name: str, drawers: Sequence[Drawer], ranker: Ranker,
                 ctx: ProposerContext, fallback: Proposer | None = None) -> None:
        self.configured = name  # the registered name; `name` is what proposes now
        self.name = name
        self.drawers = list(drawers)
        self.ranker = ranker
        self.ctx = ctx
        self.fallback = fallback
        self.failure = ""

    def begin_episode(self, episode: int, program: Program, seed: int,
                      stored: dict[str, Any] | None) -> dict[str, Any] | None:
        reports = [drawer.begin_episode(episode, program, seed, stored)
                   for drawer in self.drawers]
        lead = self.drawers[0]
        self.failure = lead.failure
        self.name = self.configured if lead.ready else self.FALLBACK
        return next((report for report in reports if report is not None), None)

    def propose(self, parent: Program, n: int, seed: int,
                exclude: Collection[str] = ()) -> list[Proposal]:
        fallback = self.fallback
        if fallback is None:
            return self.ranker.select(parent, n, seed, exclude, self.drawers)
        if self.drawers[0].ready:
            try:
                self.name = self.configured
                return self.ranker.select(parent, n, seed, exclude, self.drawers)
            except WorkerError as exc:
                self.name, self.failure = self.FALLBACK, str(exc)
                self.ctx.emit("proposer_failed", {"reason": str(exc)})
        self.name = self.FALLBACK
        return fallback.propose(parent, n, seed, exclude)

    def observe(self, observations: Sequence[Observation]) -> None:
        for drawer in self.drawers:
            drawer.tell(observations)
        self.ranker.tell(observations)

    def pending(self, values: Sequence[Mapping[str, Any]]) -> None:
        for drawer in self.drawers:
            drawer.pending(values)
        self.ranker.pending(values)

    def close(self) -> None:
        for drawer in self.drawers:
            drawer.close()
