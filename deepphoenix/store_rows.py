"""What the run database (`store.RunStore`) returns: one frozen record per row kind, and
the one encoding of its JSON columns.

Every JSON column (the meta values, a variant's site values and metrics, an attempt's
edits, an episode's training, a rung's metrics) is written by `encode_json` and read by
`decode_json`: standard JSON (what SQLite's ``json_extract`` and every JSON reader
accept), a non-finite number stored as the string ``"NaN"``, ``"Infinity"`` or
``"-Infinity"`` and read back as the float (so a string equal to one of those three reads
back as a float too), anything else JSON has no type for stored as its ``str``. A
database written before this encoding (``NaN`` tokens) reads the same.

The batch, episode and rung records are read by attribute; `to_dict()` gives the dict the
store returned before them, and ``row["best"]`` still reads a field, for scripts written
against those dicts.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
from dataclasses import dataclass
from typing import Any, TypeVar

from deepphoenix.status import RungStatus, VariantStatus

__all__ = ["AttemptRow", "BatchRow", "EpisodeRow", "RungRow", "VariantRow", "decode_json",
           "encode_json"]

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _standard(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): _standard(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_standard(v) for v in value]
    return value


def _restored(value: Any) -> Any:
    """The inverse of `_standard` for readers in Python: the three strings are floats."""
    if isinstance(value, str):
        return _NON_FINITE.get(value, value)
    if isinstance(value, dict):
        return {k: _restored(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restored(v) for v in value]
    return value


def encode_json(value: Any) -> str:
    """`value` as a JSON column holds it (standard JSON; see the module's docstring)."""
    return json.dumps(_standard(value), default=str, allow_nan=False)


def decode_json(text: str) -> Any:
    """A JSON column's value, as `encode_json` was given it."""
    return _restored(json.loads(text))


@dataclass(frozen=True, slots=True)
class VariantRow:
    hash: str
    source: str
    values: dict[str, Any]
    status: VariantStatus
    stage: str
    reason: str
    traceback: str
    score: float | None
    metrics: dict[str, Any]
    first_episode: int | None
    created_at: float
    scored_at: float | None

    @property
    def done(self) -> bool:
        """Evaluated (or rejected): never evaluated again."""
        return self.status != VariantStatus.PENDING


@dataclass(frozen=True, slots=True)
class AttemptRow:
    id: int
    episode: int
    batch: int
    slot: int
    parent: str
    child: str | None
    proposer: str
    outcome: str
    reason: str
    edits: list[dict[str, Any]]
    raw_text: str
    redraw_of: int | None = None  # the slot this candidate was drawn again for
    source: str = ""  # which of the proposer's drawers made it ("" where it has one)


@dataclass(frozen=True, slots=True)
class _Row:
    """A record that still reads like the dict it replaced (``row["best"]``)."""

    def __getitem__(self, name: str) -> Any:
        if name not in self.__dataclass_fields__:
            raise KeyError(name)
        return getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True, slots=True)
class BatchRow(_Row):
    """A batch of the loop (a step of the asynchronous one): its parent, the seed it drew
    from, the best after it (None until it finishes)."""

    episode: int
    batch: int
    parent: str
    seed: int
    best: str | None
    proposal_seconds: float | None  # the time its proposals took
    started_at: float
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class EpisodeRow(_Row):
    """An episode: the variant it started from, its training seed and the proposer's
    training report (``{}`` until it trained), the best after it."""

    episode: int
    source_hash: str
    seed: int
    training: dict[str, Any]
    best: str | None
    started_at: float
    trained_at: float | None
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class RungRow(_Row):
    """One evaluation job of a variant at a rung: `running` until it finishes."""

    hash: str
    rung: int
    resource: int
    status: RungStatus
    score: float | None
    metrics: dict[str, Any]
    episode: int
    started_at: float
    finished_at: float | None


_R = TypeVar("_R", bound=_Row)


def row_of(record: type[_R], row: sqlite3.Row, **decoded: Any) -> _R:
    """`record` from an SQLite row: its columns by name (a column a record does not know
    is left out), `decoded` (the JSON columns, read) in their place."""
    names = {f.name for f in dataclasses.fields(record)}
    data = {k: row[k] for k in row.keys() if k in names}  # noqa: SIM118
    return record(**{**data, **decoded})
