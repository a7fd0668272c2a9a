"""`PaperTraining`: how the paper's ``t5`` proposer trains its T5 (a `T5Drawer`'s
training). Each episode trains, from scratch, the model the current best program defines,
on the run's refinement pairs (the paper's self-referential mode). With a proposer source
(a program that is not a seq2seq model cannot propose) that source defines the model; it
is trained once, in the first episode, and reused. A training that fails is recorded and
the episode's candidates come from the grammar's refinements (``random-fallback``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deepphoenix.errors import WorkerError
from deepphoenix.mutator import Program, canonical_hash
from deepphoenix.proposers._protocol import Observation
from deepphoenix.proposers._t5_drawer import T5Drawer

__all__ = ["PaperTraining"]


class PaperTraining:
    """The paper's training stage: from scratch, every episode."""

    def begin_episode(self, drawer: T5Drawer, episode: int, program: Program, seed: int,
                      stored: dict[str, Any] | None) -> dict[str, Any] | None:
        settled, report = drawer.restore(episode, stored)
        if settled:
            return report
        ctx = drawer.ctx
        source = ctx.proposer_source or program.text
        if ctx.proposer_source is not None and episode > 1:
            first = drawer.folder(1)
            if (first / "proposer.json").exists():
                drawer.load(first)
                return None  # trained once, in episode 1; nothing new to store
        try:
            trained = drawer.train(episode, source, ctx.training.with_seed(seed))
        except WorkerError as exc:
            drawer.fall_back(episode, str(exc))
            return {"failed": str(exc), "losses": []}
        return {**trained.to_dict(), "source_hash": canonical_hash(source)}

    def tell(self, observations: Sequence[Observation]) -> None:
        return None  # it learns from the grammar's refinements only
