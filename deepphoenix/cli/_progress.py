"""Progress on stderr: a live status line on a terminal, plain log lines otherwise, and
JSON event lines with --json for scripts. Library code reports through callbacks; only
this module draws."""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any

import click

__all__ = ["ProgressBar", "Reporter"]


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Reporter:
    """Where status goes: `live` redraws one line (a terminal), else `line` prints lines
    no more often than `every` seconds; `json` writes one JSON object per event."""

    def __init__(self, mode: str = "auto", stream: IO[str] | None = None,
                 every: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "live" if self.stream.isatty() else "line"
        self.mode = mode
        self.every = every
        self._last_line = 0.0
        self._width = 0

    def status(self, text: str, force: bool = False) -> None:
        """A transient status (redrawn in place on a terminal, throttled otherwise)."""
        if self.mode == "json":
            return
        if self.mode == "live":
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self.stream.flush()
            self._width = len(text)
            return
        now = time.monotonic()
        if force or now - self._last_line >= self.every:
            self._last_line = now
            self.stream.write(text + "\n")
            self.stream.flush()

    def line(self, text: str) -> None:
        """A permanent line (a finished step), printed in every mode but json."""
        if self.mode == "json":
            return
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
            f"ETA {_clock(eta)}", force=step == total,
        )
        self.reporter.event("progress", label=self.label, step=step, total=total, **fields)
