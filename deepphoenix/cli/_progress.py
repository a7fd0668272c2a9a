"""Progress on stderr: a live status line on a terminal, plain log lines otherwise (one
per milestone, not one every few seconds), nothing but warnings with --quiet, and JSON
event lines with --json for scripts. Library code reports through callbacks; only this
module draws."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import IO, Any

import click

from deepphoenix.scores import printable

__all__ = ["EtaEstimate", "ProgressBar", "Reporter", "crossed_quarter"]


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def crossed_quarter(step: int, total: int, previous: int) -> bool:
    """Whether going from `previous` to `step` of `total` reached a quarter mark (25, 50,
    75 or 100%): the milestones piped output prints."""
    if total <= 0:
        return False
    return (4 * step) // total > (4 * max(0, previous)) // total


class Reporter:
    """Where status goes: `live` redraws one line (a terminal); `line` (piped) prints only
    the statuses marked as milestones; `quiet` prints warnings only; `json` writes one
    JSON object per event."""

    def __init__(self, mode: str = "auto", stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "live" if self.stream.isatty() else "line"
        self.mode = mode
        self._width = 0

    def status(self, text: str, force: bool = False) -> None:
        """A transient status: redrawn in place on a terminal; piped, printed only when
        `force` says it is a milestone (so a log gets one line per milestone, not dozens of
        near-identical ones)."""
        if self.mode in ("json", "quiet"):
            return
        text = printable(text)  # a candidate's text never acts on the terminal
        if self.mode == "live":
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self.stream.flush()
            self._width = len(text)
            return
        if force:
            self.stream.write(text + "\n")
            self.stream.flush()

    def line(self, text: str, warning: bool = False) -> None:
        """A permanent line (a finished step), printed in every mode but json; with
        --quiet only warnings."""
        if self.mode == "json" or (self.mode == "quiet" and not warning):
            return
        text = printable(text)
        if self.mode == "live" and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def event(self, kind: str, **fields: Any) -> None:
        """A machine-readable event (json mode only)."""
        if self.mode == "json":
            click.echo(json.dumps({"event": kind, **fields}, default=str), file=sys.stdout)

    def done(self) -> None:
        if self.mode == "live" and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


class ProgressBar:
    """A step counter with rate and ETA drawn through a `Reporter`."""

    def __init__(self, reporter: Reporter, label: str) -> None:
        self.reporter = reporter
        self.label = label
        self.began = time.monotonic()
        self._previous = 0

    def update(self, step: int, total: int, **fields: Any) -> None:
        elapsed = time.monotonic() - self.began
        rate = step / elapsed if elapsed > 0 else 0.0
        eta = (total - step) / rate if rate > 0 else 0.0
        width = 24
        filled = int(width * step / total) if total else 0
        bar = "#" * filled + "-" * (width - filled)
        extra = " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                         for k, v in fields.items())
        self.reporter.status(
            f"{self.label} [{bar}] {step}/{total} {extra} {rate:.1f} it/s "
            f"ETA {_clock(eta)}", force=crossed_quarter(step, total, self._previous),
        )
        self._previous = step
        self.reporter.event("progress", label=self.label, step=step, total=total, **fields)


class EtaEstimate:
    """Time left in a run, from measured rates: seconds per proposer training step (the
    current stage's own rate once it has one) and seconds per batch of proposals and
    evaluations (timed from a batch's start to its end, so a training stage never
    inflates it). Remaining = the current stage's steps left + the training stages still
    to come + the batches left. None until a rate it needs has been measured."""

    def __init__(self, episodes: int, batches: int, trains_each_episode: bool,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.episodes = episodes
        self.batches = batches
        self.trains_each_episode = trains_each_episode
        self.clock = clock
        self.episode = 0
        self.batch = 0
        self.in_batch = False
        self._batch_began = 0.0
        self._batch_seconds = 0.0
        self._batches_timed = 0
        self._stage_began: float | None = None
        self._stage_first = 0
        self._step = 0
        self._stage_total = 0
        self._training = False
        self._stage_done = False  # this episode's stage finished (or was skipped)
        self._per_step: float | None = None

    def on_episode(self, episode: int) -> None:
        self.episode, self.batch, self.in_batch = episode, 0, False
        self._stage_began, self._stage_done = None, False

    def on_training(self, step: int, total: int) -> None:
        now = self.clock()
        if self._stage_began is None or not self._training:
            self._stage_began, self._stage_first, self._training = now, step, True
        elif step > self._stage_first:
            self._per_step = (now - self._stage_began) / (step - self._stage_first)
        self._step, self._stage_total = step, total

    def on_trained(self) -> None:
        self._training, self._stage_done = False, True
        self._step = self._stage_total

    def on_batch(self, episode: int, batch: int) -> None:
        self._training, self._stage_done = False, True
        self.episode, self.batch, self.in_batch = episode, batch, True
        self._batch_began = self.clock()

    def on_batch_done(self) -> None:
        if self.in_batch:
            self._batch_seconds += self.clock() - self._batch_began
            self._batches_timed += 1
        self.in_batch = False

    def seconds_left(self) -> float | None:
        if not self._batches_timed:
            return None
        per_batch = self._batch_seconds / self._batches_timed
        batches_left = (self.episodes - self.episode) * self.batches + (self.batches - self.batch)
        left = batches_left * per_batch
        if self.in_batch:
            left += max(0.0, per_batch - (self.clock() - self._batch_began))
        stages_to_come = 0
        if self.trains_each_episode:
            stages_to_come = self.episodes - self.episode
            if self.episode and not self._stage_done and not self._training:
                stages_to_come += 1  # this episode's stage has not begun yet
        if self._training or stages_to_come:
            if self._per_step is None:
                return None if self._training or self._stage_total else left
            if self._training:
                left += (self._stage_total - self._step) * self._per_step
            left += stages_to_come * self._stage_total * self._per_step
        return left
