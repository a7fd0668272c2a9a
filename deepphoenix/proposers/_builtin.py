"""The built-in proposers of a run: ``random`` (the grammar's refinements, the baseline)
and ``t5`` (the paper's learned proposer)."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from deepphoenix.errors import WorkerError
from deepphoenix.mutator import Program, canonical_hash
from deepphoenix.proposers._distinct import draw_distinct
from deepphoenix.proposers._protocol import (
    Proposer,
    ProposerContext,
    register_proposer,
)
from deepphoenix.proposers._random import Proposal, RandomProposer
from deepphoenix.proposers._t5 import T5Sampler
from deepphoenix.sandbox import TrainReport

__all__ = ["PaperT5Proposer", "RandomRefiner"]


class RandomRefiner(Proposer):
    """The grammar's random refinements (the baseline); no training stage. Slots that
    repeat a candidate of their batch are drawn again under the same rule as the learned
    proposer (`rounds` draws in all), so the two compare at an equal budget."""

    name = "random"

    def __init__(self, ctx: ProposerContext | None = None, rounds: int | None = None) -> None:
        self.proposer = RandomProposer(max_edits=1)
        self.rounds = rounds if rounds is not None else (ctx.draw_rounds if ctx else 4)

    def propose(self, parent: Program, n: int, seed: int,
                exclude: Collection[str] = ()) -> list[Proposal]:
        rng = random.Random(seed)
        return draw_distinct(lambda _round, k: self.proposer.propose(parent, k, rng), n,
                             self.rounds, exclude)


class PaperT5Proposer(Proposer):
    """The paper's learned proposer: a T5 trained each episode on the refinement pairs,
    then sampled (constrained decoding by default).

    Which T5: in the paper's self-referential mode (no proposer source) the program under
    evolution defines it, so each episode trains the current best program's own model with
    that program's own learning dynamics. With a proposer source (a program that is not a
    seq2seq model cannot propose), that source defines it; it is trained once, in the
    first episode, and reused.

    The model can fail to train or to sample (out of memory, a library limit, a program
    whose train() raises). Then the failure is recorded and that episode's (or batch's)
    candidates come from the grammar's random refinements, named ``random-fallback`` in
    the lineage, and the run goes on.
    """

    NAME = "t5"  # recorded with every attempt while the model proposes
    name = NAME
    FALLBACK = "random-fallback"
    needs_refinement_data = True

    def __init__(self, ctx: ProposerContext) -> None:
        if ctx.data is None:
            raise WorkerError(f"the {self.NAME} proposer needs the run's refinement data")
        self.ctx = ctx
        self.data = ctx.data
        self.worker = ctx.executor.lane("proposer")
        self.proposer: T5Sampler | None = None
        self.fallback = RandomRefiner(rounds=ctx.draw_rounds)
        self.failure = ""

    def _folder(self, episode: int) -> Path:
        return self.ctx.run_dir / "episodes" / str(episode) / "model"

    def _restore(self, episode: int,
                 stored: dict[str, Any] | None) -> tuple[bool, dict[str, Any] | None]:
        """What an earlier start of this run settled for the episode: ``(True, report)``
        for a recorded training failure or a saved model (now loaded), else
        ``(False, None)``, with a half-written model folder cleared."""
        folder = self._folder(episode)
        if stored is not None and "failed" in stored:
            # Training failed before the interruption: the episode's earlier batches used
            # the fallback, so the rest do too (the same run as an uninterrupted one).
            self._fall_back(episode, str(stored["failed"]))
            return True, stored
        if (folder / "proposer.json").exists():
            self._load(folder)
            # Trained before the interruption; the curve may not have reached the database.
            return True, stored if stored is not None else _report_from_checkpoint(folder)
        if folder.exists():
            shutil.rmtree(folder)  # half-written by an interrupted run
        return False, None

    def begin_episode(self, episode: int, program: Program, seed: int,
                      stored: dict[str, Any] | None) -> dict[str, Any] | None:
        folder = self._folder(episode)
        settled, report = self._restore(episode, stored)
        if settled:
            return report
        source = self.ctx.proposer_source or program.text
        if self.ctx.proposer_source is not None and episode > 1:
            first = self._folder(1)
            if (first / "proposer.json").exists():
                self._load(first)
                return None  # trained once, in episode 1; nothing new to store
        settings = self.ctx.training.with_seed(seed)
        self.name, self.failure = self.NAME, ""
        try:
            self.proposer, trained = T5Sampler.train(
                source, self.data, settings, self.worker, out=folder,
                sampling=self.ctx.sampling, on_progress=self._progress(episode),
                timeout=self.ctx.train_timeout)
        except WorkerError as exc:
            self._fall_back(episode, str(exc))
            return {"failed": str(exc), "losses": []}
        return {**trained.to_dict(), "source_hash": canonical_hash(source)}

    def _progress(self, episode: int) -> Callable[[dict[str, Any]], None]:
        """The training stage's progress messages, as the run's ``training`` events."""

        def progress(message: dict[str, Any]) -> None:
            self.ctx.emit("training", {"episode": episode, "step": message["step"],
                                       "total": message["total"], "loss": message["loss"]})

        return progress

    def _load(self, folder: Path) -> None:
        self.name, self.failure = self.NAME, ""
        self.proposer = T5Sampler.load(folder, self.worker, self.ctx.sampling)

    def _fall_back(self, episode: int, reason: str) -> None:
        self.proposer, self.name, self.failure = None, self.FALLBACK, reason
        self.ctx.emit("proposer_failed", {"episode": episode, "reason": reason})

    def propose(self, parent: Program, n: int, seed: int,
                exclude: Collection[str] = ()) -> list[Proposal]:
        if self.proposer is not None:
            try:
                self.name = self.NAME
                return self._sample(self.proposer, parent, n, seed, exclude)
            except WorkerError as exc:
                self.name, self.failure = self.FALLBACK, str(exc)
                self.ctx.emit("proposer_failed", {"reason": str(exc)})
        self.name = self.FALLBACK
        return self.fallback.propose(parent, n, seed, exclude)

    def _sample(self, model: T5Sampler, parent: Program, n: int, seed: int,
                exclude: Collection[str]) -> list[Proposal]:
        """`n` candidates from the trained model (the paper: `n` samples, repeats drawn
        again)."""
        return model.propose(parent, n, seed, exclude)

    def close(self) -> None:
        self.worker.close()


def _report_from_checkpoint(folder: Path) -> dict[str, Any]:
    """The training report of a saved proposer (`proposer.json` and `losses.json`)."""
    meta = json.loads((folder / "proposer.json").read_text())
    losses = json.loads((folder / "losses.json").read_text())
    keys = (*TrainReport.SUMMARY, "rows")
    return {**{k: meta[k] for k in keys if k in meta}, "losses": losses,
            "sum_loss": sum(losses)}


register_proposer("random", RandomRefiner)
register_proposer("t5", PaperT5Proposer)
