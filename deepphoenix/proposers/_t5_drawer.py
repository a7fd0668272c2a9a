"""`T5Drawer`: samples from the run's trained T5 (a `T5Sampler` held by the proposer
lane's worker), as a drawer: ``t5``, ``learned`` and ``t5-only`` draw with it. How and
when its model trains is its `training` (`PaperTraining`: the paper's, from scratch each
episode; `HindsightTraining`: warm-started, on the run's improving pairs); this class
holds what both share: the episode's model folder, what an earlier start of the run
settled (restore), loading a saved model, and falling back when the model cannot train.

A drawer that is not `ready` (its model failed to train) draws nothing; the composed
proposer then draws the grammar's refinements, named ``random-fallback`` in the lineage.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

from deepphoenix.errors import WorkerError
from deepphoenix.mutator import Program
from deepphoenix.proposers._distinct import round_seed
from deepphoenix.proposers._drawer import Drawer
from deepphoenix.proposers._protocol import Observation, ProposerContext
from deepphoenix.proposers._records import Proposal, TrainSettings
from deepphoenix.proposers._t5 import T5Sampler
from deepphoenix.sandbox import GenerateJob, TrainReport

__all__ = ["T5Drawer", "Training", "report_from_checkpoint"]


class Training(Protocol):
    """How a `T5Drawer`'s model trains (`PaperTraining`, `HindsightTraining`)."""

    def begin_episode(self, drawer: T5Drawer, episode: int, program: Program, seed: int,
                      stored: dict[str, Any] | None) -> dict[str, Any] | None: ...

    def tell(self, observations: Sequence[Observation]) -> None: ...


class T5Drawer(Drawer):
    """Candidates sampled from the trained T5 (constrained decoding by default), grounded
    against the trusted parent. Each round is one seeded batch of samples."""

    whole_rounds: ClassVar[bool] = True

    def __init__(self, ctx: ProposerContext, training: Training, proposer: str = "t5",
                 source: str = "") -> None:
        if ctx.data is None:
            raise WorkerError(f"the {proposer} proposer needs the run's refinement data")
        self.ctx = ctx
        self.data = ctx.data
        self.worker = ctx.executor.lane("proposer")
        self.training = training
        self.rounds = ctx.sampling.rounds
        self.source = source
        self.model: T5Sampler | None = None
        self.reason = ""  # why the model failed to train ("" while it stands)
        self.prepared: GenerateJob | None = None  # the batch's generation job

    @property
    def ready(self) -> bool:
        return self.model is not None

    @property
    def failure(self) -> str:
        return self.reason

    # -- an episode's model --------------------------------------------------------------
    def folder(self, episode: int) -> Path:
        """Where the model of `episode` is saved."""
        return self.ctx.run_dir / "episodes" / str(episode) / "model"

    def restore(self, episode: int,
                stored: dict[str, Any] | None) -> tuple[bool, dict[str, Any] | None]:
        """What an earlier start of this run settled for the episode: ``(True, report)``
        for a recorded training failure or a saved model (now loaded), else
        ``(False, None)``, with a half-written model folder cleared."""
        folder = self.folder(episode)
        if stored is not None and "failed" in stored:
            # Training failed before the interruption: the episode's earlier batches used
            # the fallback, so the rest do too (the same run as an uninterrupted one).
            self.fall_back(episode, str(stored["failed"]))
            return True, stored
        if (folder / "proposer.json").exists():
            self.load(folder)
            # Trained before the interruption; the curve may not have reached the database.
            return True, stored if stored is not None else report_from_checkpoint(folder)
        if folder.exists():
            shutil.rmtree(folder)  # half-written by an interrupted run
        return False, None

    def load(self, folder: Path) -> None:
        """Draw from the model saved in `folder`."""
        self.reason = ""
        self.model = T5Sampler.load(folder, self.worker, self.ctx.sampling)

    def fall_back(self, episode: int, reason: str) -> None:
        """The model cannot train: draw nothing this episode, and say why."""
        self.model, self.reason = None, reason
        self.ctx.emit("proposer_failed", {"episode": episode, "reason": reason})

    def train(self, episode: int, source: str, settings: TrainSettings,
              tokens: Path | None = None, init_from: Path | None = None) -> TrainReport:
        """Train the model `source` defines into the episode's folder and draw from it
        (`T5Sampler.train`); `WorkerError` when it fails (the caller falls back)."""
        self.reason = ""
        self.model, report = T5Sampler.train(
            source, self.data, settings, self.worker, out=self.folder(episode),
            sampling=self.ctx.sampling, on_progress=self.progress(episode),
            timeout=self.ctx.train_timeout, tokens=tokens, init_from=init_from)
        return report

    def progress(self, episode: int) -> Callable[[dict[str, Any]], None]:
        """The training stage's progress messages, as the run's ``training`` events."""

        def progress(message: dict[str, Any]) -> None:
            self.ctx.emit("training", {"episode": episode, "step": message["step"],
                                       "total": message["total"], "loss": message["loss"]})

        return progress

    # -- the drawer ----------------------------------------------------------------------
    def begin_episode(self, episode: int, program: Program, seed: int,
                      stored: dict[str, Any] | None) -> dict[str, Any] | None:
        return self.training.begin_episode(self, episode, program, seed, stored)

    def draw(self, parent: Program, n: int, seed: int, round_: int = 0) -> list[Proposal]:
        model = self.model
        if model is None:
            raise WorkerError(self.reason or "the proposer's model has not been trained")
        if round_ == 0 or self.prepared is None:
            self.prepared = model.prepare(parent)  # built once per batch
        texts = model.sample_texts(parent, n, round_seed(seed, round_), self.prepared)
        return [Proposal(model.ground(parent, text), text, self.source) for text in texts]

    def tell(self, observations: Sequence[Observation]) -> None:
        self.training.tell(observations)

    def close(self) -> None:
        self.worker.close()


def report_from_checkpoint(folder: Path) -> dict[str, Any]:
    """The training report of a saved proposer (`proposer.json` and `losses.json`)."""
    meta = json.loads((folder / "proposer.json").read_text())
    losses = json.loads((folder / "losses.json").read_text())
    keys = (*TrainReport.SUMMARY, "rows")
    return {**{k: meta[k] for k in keys if k in meta}, "losses": losses,
            "sum_loss": sum(losses)}
