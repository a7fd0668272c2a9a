"""`deepphoenix run`'s progress: run events (`deepphoenix.engine.Event` records) turned into
a status line (terminal), log lines, or JSON lines. One handler per record type in
`RunDisplay.HANDLERS`; every record the engine declares has an entry (a test checks it),
those a person need not see as `_quiet`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepphoenix.cli._progress import EtaEstimate, Reporter, _clock, crossed_quarter
from deepphoenix.engine import (
    BatchDone,
    BatchStarted,
    DataMade,
    EpisodeDone,
    EpisodeStarted,
    Evaluated,
    Event,
    NewBest,
    Preflighted,
    Promoted,
    Proposed,
    ProposerFailed,
    Redrawing,
    Rescored,
    Restarted,
    RunConfig,
    RunDone,
    RunStarted,
    SandboxLine,
    Scoring,
    SeedScored,
    TimeLimit,
    Trained,
    TrainingStep,
    Warned,
)
from deepphoenix.objectives import is_command
from deepphoenix.scores import format_score
from deepphoenix.status import VariantStatus

__all__ = ["RunDisplay", "label", "score_line", "shown"]


def label(objective: str) -> str:
    """How a score is named in progress lines: a command objective's command is long
    (`run` prints it once, with the objective)."""
    return "score" if is_command(objective) else objective


def score_line(objective: str, score: float | None, params: int | None) -> str:
    text = f"{objective} {format_score(score)}" if score is not None else f"{objective} -"
    return text + (f", {params / 1e6:.2f} M parameters" if params else "")


def shown(path: str | Path) -> str:
    """A path as the summary prints it: relative to the working directory when it lies
    under it, else absolute (never a mix of both)."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path.cwd()))
    except ValueError:
        return str(resolved)


class RunDisplay:
    """Turns run events into a status line (terminal), log lines, or JSON lines."""

    HANDLERS: dict[type[Event], Callable[[RunDisplay, Any], None]]

    def __init__(self, reporter: Reporter, config: RunConfig) -> None:
        self.reporter = reporter
        self.config = config
        self.episode = 0
        self.batch = 0
        self.scored = 0
        self.best: float | None = None
        self.objective = label(config.objective)
        self._last_step = 0
        self.eta = EtaEstimate(config.episodes, config.batches, trains_each_episode=(
            config.proposer == "t5" and config.proposer_source_spec() is None))

    def __call__(self, event: Event) -> None:
        self.reporter.event(event.kind, **{k: v for k, v in event.fields.items()
                                           if k != "config"})
        handler = self.handler(type(event))
        if handler is not None:
            handler(self, event)

    @classmethod
    def handler(cls, record: type[Event]) -> Callable[[RunDisplay, Any], None] | None:
        """The handler of a record type: its own, else its nearest base's (a variant of
        a kind, `RungEvaluated`, is shown as its kind); None for an `OtherEvent`."""
        for base in record.__mro__:
            if base in cls.HANDLERS:
                return cls.HANDLERS[base]
        return None

    def _eta(self) -> str:
        left = self.eta.seconds_left()
        return "ETA -" if left is None else f"ETA {_clock(left)}"

    def _status(self, extra: str = "", milestone: bool = False) -> None:
        c = self.config
        best = f"best {format_score(self.best)}" if self.best is not None else "best -"
        self.reporter.status(
            f"episode {self.episode}/{c.episodes} batch {self.batch}/{c.batches} "
            f"scored {self.scored} {best} {extra}{self._eta()}", force=milestone)

    # -- one handler per record ------------------------------------------------------------
    def _quiet(self, event: Event) -> None:
        """Shown in --json only."""

    def _run(self, e: RunStarted) -> None:
        self.objective = label(e.objective)
        self.reporter.line(f"run directory: {shown(e.run_dir)}"
                           + (" (resuming)" if e.resumed else ""))
        self.reporter.line(f"objective: {e.objective} ({e.direction})")

    def _warning(self, e: Warned) -> None:
        self.reporter.line(f"warning: {e.message}", warning=True)

    def _sandbox(self, e: SandboxLine) -> None:
        self.reporter.line(e.line)

    def _rescored(self, e: Rescored) -> None:
        r = e.rescore
        rescored = ", ".join("-" if x is None else format_score(x) for x in r.rescored)
        stored = "-" if r.stored is None else format_score(r.stored)
        self.reporter.line(f"  best {r.hash[:8]} re-scored in a fresh process: "
                           f"{r.verdict} (stored {stored}, re-scored {rescored})",
                           warning=r.verdict != "reproduced")

    def _data(self, e: DataMade) -> None:
        self.reporter.line(f"data: {e.pairs} refinement pairs, vocabulary {e.vocab_size}, "
                           f"{e.mean_input_tokens:.1f} tokens/"
                           + ("view" if e.view else "source"))

    def _seed(self, e: SeedScored) -> None:
        self.best = e.score
        self.reporter.line(f"seed {e.hash[:8]}: {score_line(self.objective, e.score, e.params)}")

    def _episode(self, e: EpisodeStarted) -> None:
        self.episode, self.batch, self._last_step = e.episode, 0, 0
        self.eta.on_episode(e.episode)
        self.reporter.line(f"episode {e.episode}/{e.episodes}: source {e.source[:8]}")

    def _training(self, e: TrainingStep) -> None:
        self.eta.on_training(e.step, e.total)
        milestone = crossed_quarter(e.step, e.total, self._last_step)
        self._last_step = e.step
        self._status(f"training {e.step}/{e.total} loss {e.loss:.3f} ",
                     milestone=milestone and e.step < e.total)

    def _trained(self, e: Trained) -> None:
        self.eta.on_trained()
        self.reporter.line(f"  trained the episode's model ({e.params / 1e6:.2f} M) for "
                           f"{e.steps} steps in {e.seconds:.1f} s, final loss "
                           f"{e.final_loss:.4f}")

    def _batch(self, e: BatchStarted) -> None:
        self.batch = e.batch
        self.eta.on_batch(e.episode, e.batch)
        self._status()

    def _proposed(self, e: Proposed) -> None:
        outcomes = ", ".join(f"{n} {k}" for k, n in sorted(e.outcomes.items()))
        self.reporter.status(f"  batch {e.batch}: proposed {outcomes}", force=True)

    def _redraw(self, e: Redrawing) -> None:
        self.reporter.status(f"  batch {e.batch}: drawing {e.count} again (draw "
                             f"{e.round + 1} of {e.rounds}): {e.reasons}", force=True)

    def _evaluated(self, e: Evaluated) -> None:
        if e.status == VariantStatus.SCORED:
            self.scored += 1
        else:
            self.reporter.line(f"  {e.hash[:8]} {e.status} at {e.stage}: {e.reason[:100]}")
        self._status()

    def _batch_done(self, e: BatchDone) -> None:
        self.eta.on_batch_done()
        if e.improved:
            self.best = e.score
            score = "-" if e.score is None else format_score(e.score)
            self.reporter.line(f"  batch {e.batch}: new best {e.best[:8]} "
                               f"{self.objective} {score}")
        self._status(milestone=True)

    def _new_best(self, e: NewBest) -> None:
        self.best = e.score
        self.reporter.line(f"  new best {e.best[:8]} {self.objective} {e.score:.4f}")

    def _proposer_failed(self, e: ProposerFailed) -> None:
        self.reporter.line(f"  the episode's model failed ({e.reason[:120]}); "
                           "using random refinements instead", warning=True)

    def _episode_done(self, e: EpisodeDone) -> None:
        score = format_score(e.score) if e.score is not None else "-"
        self.reporter.line(f"  episode {e.episode} done: best {e.best[:8]} "
                           f"{self.objective} {score}")


RunDisplay.HANDLERS = {
    RunStarted: RunDisplay._run, Warned: RunDisplay._warning,
    SandboxLine: RunDisplay._sandbox, Preflighted: RunDisplay._quiet,
    DataMade: RunDisplay._data, Scoring: RunDisplay._quiet,
    Evaluated: RunDisplay._evaluated, SeedScored: RunDisplay._seed,
    EpisodeStarted: RunDisplay._episode, TrainingStep: RunDisplay._training,
    Trained: RunDisplay._trained, BatchStarted: RunDisplay._batch,
    Proposed: RunDisplay._proposed, Redrawing: RunDisplay._redraw,
    BatchDone: RunDisplay._batch_done, NewBest: RunDisplay._new_best,
    EpisodeDone: RunDisplay._episode_done, ProposerFailed: RunDisplay._proposer_failed,
    TimeLimit: RunDisplay._quiet, Promoted: RunDisplay._quiet,
    Restarted: RunDisplay._quiet, Rescored: RunDisplay._rescored,
    RunDone: RunDisplay._quiet,  # the command prints the summary itself
}
