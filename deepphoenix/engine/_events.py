"""What a run tells its watchers: one frozen record per kind of event.

A run calls its `on_event` callback with one of these records for everything that happens
(the CLI's progress lines and ``--json`` output, the Python API's progress bar, a
notebook's own callback). Each record answers `kind` (its name, the string ``--json``
prints as ``"event"``) and `fields` (a dict of its values, keys in declaration order: what
``--json`` prints after the name), so code written against the older ``Event(kind,
fields)`` reads them unchanged; new code reads the attributes, or matches on the type.

`EVENTS` maps every kind to its record. A proposer reports through `ProposerContext.emit`
(a kind and a dict: the proposers sit below the engine); `event_of` turns that into the
record of its kind, or an `OtherEvent` for a kind no record declares (a third-party
proposer's own).

To add a kind: declare a record here (``@_registered``, a ``KIND``, its fields in the
order ``--json`` should print them), emit it where it happens, and give the CLI's display
a handler for it (`cli/_display.py`; a test fails until it has one, even one that shows
nothing).
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from deepphoenix.evaluator import Verdict
from deepphoenix.objectives import Direction
from deepphoenix.status import VariantStatus

__all__ = [
    "EVENTS",
    "RECORDS",
    "BatchDone",
    "BatchStarted",
    "DataMade",
    "EpisodeDone",
    "EpisodeStarted",
    "Evaluated",
    "Event",
    "NewBest",
    "OtherEvent",
    "Preflighted",
    "Promoted",
    "Proposed",
    "ProposerFailed",
    "Redrawing",
    "Rescore",
    "Rescored",
    "Restarted",
    "RunDone",
    "RunStarted",
    "RunSummary",
    "RungEvaluated",
    "SandboxLine",
    "Scoring",
    "SeedScored",
    "TimeLimit",
    "Trained",
    "TrainingStep",
    "Warned",
    "event_of",
]


# What a run and its final re-score report: the payloads of `RunDone` and `Rescored`
# (here, below every module that makes them, so the records import nothing of the engine).
@dataclass(frozen=True, slots=True)
class Rescore:
    """A stored score and what evaluating the variant again gave."""

    hash: str
    stored: float | None
    rescored: tuple[float | None, ...]
    verdict: str  # REPRODUCED, NONDETERMINISTIC, NOT_REPRODUCED or UNCHECKED
    reason: str

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rescored"] = list(self.rescored)
        return data


@dataclass(frozen=True, slots=True)
class RunSummary:
    run_dir: Path
    objective: str
    direction: Direction
    seed_hash: str
    seed_score: float | None
    seed_params: int | None
    best_hash: str
    best_score: float | None
    best_params: int | None
    evaluations: int
    seconds: float
    best_path: Path
    rescore: str = ""  # the best's re-score in a fresh process: "reproduced", … (_rescore)
    # Why the run evaluated nothing but its seed ("" when it evaluated more): its
    # proposals' outcomes, most frequent first. The CLI exits non-zero with it.
    nothing_evaluated: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "objective": self.objective,
                "direction": self.direction.value, "seed_hash": self.seed_hash,
                "seed_score": self.seed_score, "seed_params": self.seed_params,
                "best_hash": self.best_hash, "best_score": self.best_score,
                "best_params": self.best_params, "evaluations": self.evaluations,
                "seconds": self.seconds, "best_path": str(self.best_path),
                "rescore": self.rescore, "nothing_evaluated": self.nothing_evaluated}


_E = TypeVar("_E", bound="type[Event]")

EVENTS: dict[str, type[Event]] = {}  # kind → its record, filled by @_registered
RECORDS: list[type[Event]] = []  # every record, a kind's variants too (RungEvaluated)


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened in a run (the base of every record)."""

    KIND: ClassVar[str] = ""

    @property
    def kind(self) -> str:
        """The event's name (``--json`` prints it as ``"event"``)."""
        return self.KIND

    @property
    def fields(self) -> dict[str, Any]:
        """The record's values by name, in declaration order (``--json`` prints them)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _registered(cls: _E) -> _E:
    """Register a record under its `KIND`; a second record of a kind must be a variant
    (a subclass) of the first, which `EVENTS` keeps."""
    first = EVENTS.setdefault(cls.KIND, cls)
    assert cls.KIND and issubclass(cls, first), cls
    RECORDS.append(cls)
    return cls


@_registered
@dataclass(frozen=True, slots=True)
class RunStarted(Event):
    """A run starts (or resumes) in `run_dir`; `config` is its `RunConfig.to_dict()`."""

    KIND: ClassVar[str] = "run"
    run_dir: str
    config: dict[str, Any]
    objective: str
    direction: str
    resumed: bool


@_registered
@dataclass(frozen=True, slots=True)
class Warned(Event):
    """Something the user should know; the run goes on."""

    KIND: ClassVar[str] = "warning"
    message: str


@_registered
@dataclass(frozen=True, slots=True)
class SandboxLine(Event):
    """Which sandbox the local workers run in, said once at the start."""

    KIND: ClassVar[str] = "sandbox"
    line: str


@_registered
@dataclass(frozen=True, slots=True)
class Preflighted(Event):
    """The worker's check of the seed before any data (`_preflight`)."""

    KIND: ClassVar[str] = "preflight"
    verdict: Verdict
    params: int | None
    seconds: float | None


@_registered
@dataclass(frozen=True, slots=True)
class DataMade(Event):
    """The proposer's training data is ready."""

    KIND: ClassVar[str] = "data"
    pairs: int
    vocab_size: int
    mean_input_tokens: float
    view: bool


@_registered
@dataclass(frozen=True, slots=True)
class Scoring(Event):
    """`count` candidates of a batch go to the evaluator."""

    KIND: ClassVar[str] = "scoring"
    episode: int
    batch: int
    count: int


@_registered
@dataclass(frozen=True, slots=True)
class Evaluated(Event):
    """One evaluation finished and was stored; `done`: evaluations so far."""

    KIND: ClassVar[str] = "evaluated"
    episode: int
    batch: int
    hash: str
    status: VariantStatus
    stage: str
    reason: str
    score: float | None
    params: int | None
    seconds: float | None
    done: int


@_registered
@dataclass(frozen=True, slots=True)
class RungEvaluated(Evaluated):
    """An evaluation of the asynchronous loop: also its `rung` of `rungs` and the budget
    it had (`resource`: rows or steps; None at full fidelity)."""

    rung: int
    resource: int | None
    rungs: int


@_registered
@dataclass(frozen=True, slots=True)
class SeedScored(Event):
    """The seed's score, the baseline of the search."""

    KIND: ClassVar[str] = "seed"
    hash: str
    score: float | None
    params: int | None


@_registered
@dataclass(frozen=True, slots=True)
class EpisodeStarted(Event):
    KIND: ClassVar[str] = "episode"
    episode: int
    episodes: int
    source: str
    score: float | None


@_registered
@dataclass(frozen=True, slots=True)
class TrainingStep(Event):
    """A step of the proposer's training stage (sent by the proposer)."""

    KIND: ClassVar[str] = "training"
    episode: int
    step: int
    total: int
    loss: float


@_registered
@dataclass(frozen=True, slots=True)
class Trained(Event):
    """The episode's proposer model finished training."""

    KIND: ClassVar[str] = "trained"
    episode: int
    steps: int
    final_loss: float
    seconds: float
    params: int


@_registered
@dataclass(frozen=True, slots=True)
class BatchStarted(Event):
    KIND: ClassVar[str] = "batch"
    episode: int
    batch: int
    batches: int
    parent: str


@_registered
@dataclass(frozen=True, slots=True)
class Proposed(Event):
    """A batch's proposals, counted by outcome."""

    KIND: ClassVar[str] = "proposed"
    episode: int
    batch: int
    outcomes: dict[str, int]


@_registered
@dataclass(frozen=True, slots=True)
class Redrawing(Event):
    """`count` slots whose candidates broke a constraint are drawn again."""

    KIND: ClassVar[str] = "redraw"
    episode: int
    batch: int
    round: int
    rounds: int
    count: int
    reasons: str


@_registered
@dataclass(frozen=True, slots=True)
class BatchDone(Event):
    KIND: ClassVar[str] = "batch_done"
    episode: int
    batch: int
    best: str
    score: float | None
    improved: bool


@_registered
@dataclass(frozen=True, slots=True)
class NewBest(Event):
    """A better full score (the asynchronous loop, which has no batch end to say it)."""

    KIND: ClassVar[str] = "new_best"
    episode: int
    best: str
    score: float


@_registered
@dataclass(frozen=True, slots=True)
class EpisodeDone(Event):
    KIND: ClassVar[str] = "episode_done"
    episode: int
    best: str
    score: float | None


@_registered
@dataclass(frozen=True, slots=True, kw_only=True)
class ProposerFailed(Event):
    """The proposer's model failed (training, or sampling: then without `episode`, which
    `fields` then leaves out); random refinements stand in."""

    KIND: ClassVar[str] = "proposer_failed"
    episode: int | None = None
    reason: str

    @property
    def fields(self) -> dict[str, Any]:
        found: dict[str, Any] = {"reason": self.reason}
        return found if self.episode is None else {"episode": self.episode, **found}


@_registered
@dataclass(frozen=True, slots=True)
class TimeLimit(Event):
    """The run's time limit is up: it ends after the evaluations under way."""

    KIND: ClassVar[str] = "time_limit"
    seconds: float | None


@_registered
@dataclass(frozen=True, slots=True)
class Promoted(Event):
    """A candidate goes up to `rung` (`resource` rows or steps)."""

    KIND: ClassVar[str] = "promoted"
    episode: int
    hash: str
    rung: int
    resource: int | None


@_registered
@dataclass(frozen=True, slots=True)
class Restarted(Event):
    """An evaluation a killed run left running starts again."""

    KIND: ClassVar[str] = "restarted"
    hash: str
    rung: int


@_registered
@dataclass(frozen=True, slots=True)
class Rescored(Event):
    """The best's score checked in a fresh process; `fields` are `Rescore.to_dict()`."""

    KIND: ClassVar[str] = "rescored"
    rescore: Rescore

    @property
    def fields(self) -> dict[str, Any]:
        return self.rescore.to_dict()


@_registered
@dataclass(frozen=True, slots=True)
class RunDone(Event):
    """The run ended; `fields` are `RunSummary.to_dict()`."""

    KIND: ClassVar[str] = "done"
    summary: RunSummary

    @property
    def fields(self) -> dict[str, Any]:
        return self.summary.to_dict()


@dataclass(frozen=True, slots=True)
class OtherEvent(Event):
    """An event of a kind no record declares (a third-party proposer's own), or one whose
    fields do not fit its kind's record: kept as it came."""

    name: str
    data: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.name

    @property
    def fields(self) -> dict[str, Any]:
        return dict(self.data)


def event_of(kind: str, fields: dict[str, Any]) -> Event:
    """The record of a proposer's event (`ProposerContext.emit` sends a kind and a dict)."""
    record = EVENTS.get(kind)
    if record is not None:
        try:
            return record(**fields)
        except TypeError:  # fields of its own under a known name
            pass
    return OtherEvent(kind, dict(fields))
