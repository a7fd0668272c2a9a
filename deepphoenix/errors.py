"""The one exception root of deepphoenix and its subclasses.

Library code raises these for unexpected failures; expected outcomes of rewriting or running
a candidate are typed results, not exceptions. The CLI catches `DeepPhoenixError` in one
place and prints ``str(error)`` as a single line with ``exit_code``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DeepPhoenixError",
    "EditError",
    "ExpressionError",
    "GrammarError",
    "ParseError",
    "RunDirError",
    "SiteError",
    "SourceError",
    "UnknownNameError",
    "WorkerError",
    "did_you_mean",
]


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """Return `` Did you mean 'x'?`` for the closest known name, or an empty string."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


class DeepPhoenixError(Exception):
    """Root of every error deepphoenix raises on purpose.

    The message is one line that says what went wrong and what to do about it.
    """

    exit_code = 1


class SourceError(DeepPhoenixError):
    """A source file cannot be read as Python text: missing, a directory, binary, not UTF-8,
    or empty. Point the command at a UTF-8 Python file."""


class ParseError(DeepPhoenixError):
    """The text is not valid Python. The message carries file, line and column; fix the
    syntax there."""

    def __init__(self, message: str, *, path: str | None, line: int, column: int) -> None:
        where = f"{path or '<source>'}:{line}:{column}"
        super().__init__(f"{where}: syntax error: {message}")
        self.path = path
        self.line = line
        self.column = column


class GrammarError(DeepPhoenixError):
    """A grammar definition is invalid (bad TOML, unknown key, bad domain, unknown site in
    an expression). The message names the key and, for files, the line."""


class UnknownNameError(DeepPhoenixError):
    """A name (grammar, proposer, preset, format, strategy) is not registered. The message
    lists close matches; `deepphoenix grammars` lists the grammars."""

    def __init__(self, what: str, name: str, known: Iterable[str]) -> None:
        known = sorted(known)
        super().__init__(
            f"Unknown {what} {name!r}.{did_you_mean(name, known)} Known: {', '.join(known)}."
        )
        self.name = name


class ExpressionError(GrammarError):
    """An invariant or derivation expression uses syntax outside the safe subset
    (arithmetic, comparisons, and/or/not, min/max/abs) or names an unknown site."""


class SiteError(DeepPhoenixError):
    """The grammar does not fit the source: no sites, a required site missing, a site
    matched in several places, or a domain relative to the file's value that this file
    cannot resolve. Use another grammar, `--grammar infer`, or narrow the selector with an
    owner."""


class EditError(DeepPhoenixError):
    """An edit names an unknown site or a derived site, or its value has the wrong type for
    the site's kind."""


class ConfigError(DeepPhoenixError):
    """A run or training configuration value is invalid. The message names the field, its
    value and its type."""


class RunDirError(DeepPhoenixError):
    """A run directory is missing, not a deepphoenix run, already used (pass --resume), or
    was written by an incompatible version."""


class CheckpointError(DeepPhoenixError):
    """A model directory is missing files (model.safetensors, config.json, tokenizer.json)
    or cannot be loaded. Train one with `deepphoenix train`."""


class WorkerError(DeepPhoenixError):
    """A sandbox worker could not be started or broke its protocol (not a candidate's
    failure: those are recorded outcomes)."""
