"""The records that cross the process boundary: one job record per kind of worker job, and
the reports the jobs send back.

A job record is a frozen dataclass that names its kind (`Job.KIND`, the key of the worker's
job table in `deepphoenix.jobs`) and declares which of its fields name an input file or
folder on the parent's machine and which name a folder the job writes. That one
declaration is what a confined worker binds (`Worker`), what the Ray executor ships to
its actors and brings back, and what either rewrites. On the wire a job is its kind and
its `to_dict()`; the worker rebuilds the record with `from_dict`. A record also says
whether its job runs in a process of its own (`Job.ISOLATED`: the jobs that execute a
candidate and report a score), forked for it from the worker's trusted loop. Nothing here
imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar, Self

from deepphoenix.status import VariantStatus

__all__ = ["CheckJob", "EvalJob", "EvalReport", "GenerateJob", "GenerateReport",
           "GenerationJob", "Job", "JobPaths", "NamedJob", "TrainJob", "TrainReport", "as_job"]


@dataclass(frozen=True, slots=True)
class JobPaths:
    """The paths a job names, by field: files and folders it reads, folders it writes."""

    files: dict[str, str] = field(default_factory=dict)
    folders: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def inputs(self) -> dict[str, str]:
        return {**self.files, **self.folders}


@dataclass(frozen=True, slots=True)
class Job:
    """A job for a sandbox worker. Subclasses set `KIND` and declare their path fields;
    a path field that is empty or None names nothing."""

    KIND: ClassVar[str] = ""
    INPUT_FILES: ClassVar[tuple[str, ...]] = ()  # fields naming a file the job reads
    INPUT_FOLDERS: ClassVar[tuple[str, ...]] = ()  # fields naming a folder it reads
    OUTPUT_FOLDERS: ClassVar[tuple[str, ...]] = ()  # fields naming a folder it writes
    # Run in a process of its own, forked from the worker's trusted loop for this job: the
    # candidate's code never runs where the result channel and its keys live, and nothing
    # it changes (a patched torch, a thread, a cache) outlives its job (docs/sandbox.md).
    ISOLATED: ClassVar[bool] = False

    @property
    def kind(self) -> str:
        return self.KIND

    def in_own_process(self) -> bool:
        """Whether the worker runs this job in a process of its own (`ISOLATED`)."""
        return self.ISOLATED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """The record its `to_dict` gave (a `TypeError` names any field it does not have)."""
        return cls(**data)

    def paths(self) -> JobPaths:
        def named(keys: tuple[str, ...]) -> dict[str, str]:
            return {k: str(v) for k in keys if (v := getattr(self, k))}

        return JobPaths(named(self.INPUT_FILES), named(self.INPUT_FOLDERS),
                        named(self.OUTPUT_FOLDERS))

    def with_paths(self, changes: Mapping[str, str]) -> Job:
        """The same job with these path fields changed (a path local to another machine)."""
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class NamedJob(Job):
    """A job outside the built-in table: a ``module:function`` on the worker's
    `WorkerSettings.extra_jobs` allow-list (the sandbox's own tests and diagnostics), with
    a dict of arguments. `input_files`, `input_folders` and `output_folders` name the
    arguments that are paths; `isolated` runs it in a process of its own, as `EvalJob`."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    input_files: tuple[str, ...] = ()
    input_folders: tuple[str, ...] = ()
    output_folders: tuple[str, ...] = ()
    isolated: bool = False

    @property
    def kind(self) -> str:
        return self.name

    def in_own_process(self) -> bool:
        return self.isolated

    def to_dict(self) -> dict[str, Any]:
        return dict(self.args)

    def paths(self) -> JobPaths:
        def named(keys: tuple[str, ...]) -> dict[str, str]:
            return {k: str(v) for k in keys if (v := self.args.get(k))}

        return JobPaths(named(self.input_files), named(self.input_folders),
                        named(self.output_folders))

    def with_paths(self, changes: Mapping[str, str]) -> Job:
        return replace(self, args={**self.args, **changes})


def as_job(job: Job | str, args: Mapping[str, Any] | None = None) -> Job:
    """`job`, or the `NamedJob` a ``module:function`` name and its `args` make."""
    if isinstance(job, str):
        return NamedJob(job, dict(args or {}))
    if args:
        raise TypeError(f"a {type(job).__name__} carries its own arguments; got args too")
    return job


@dataclass(frozen=True, slots=True)
class EvalJob(Job):
    """Score one candidate under the run's objective (`evaluator._jobs.evaluate_job`). A
    run over a project also names the project folder (read only: the candidate's
    workspace is made from it) and the candidate's files, by their paths in it."""

    KIND: ClassVar[str] = "evaluate"
    INPUT_FILES: ClassVar[tuple[str, ...]] = ("rows",)
    INPUT_FOLDERS: ClassVar[tuple[str, ...]] = ("project",)
    ISOLATED: ClassVar[bool] = True

    source: str
    objective: dict[str, Any]  # ObjectiveSpec.to_dict()
    task: str
    rows: str  # the run's rows ("" for an objective without data)
    vocab_size: int
    samples: int
    heldout: int
    batch_size: int
    lr: float
    weight_decay: float
    seed: int
    max_params: int | None = None
    timeout: float | None = None  # the hard limit: a data-free built-in stops at 3/4 of it
    stop_step: int | None = None  # user objectives: ctx.should_stop() from this step on
    project: str = ""  # the project folder a candidate's workspace is made from ("": none)
    files: dict[str, str] = field(default_factory=dict)  # the candidate's files, by path
    link_bytes: int = 1 << 20  # project files over this size are linked, never copied


@dataclass(frozen=True, slots=True)
class CheckJob(Job):
    """Check one candidate against the run's constraints before it may take an evaluation
    slot (`evaluator._check_job.check_job`): build its model without weights (torch's
    meta device), count its parameters against `max_params`, call the user's
    `constraint`; at a run's start (`preflight`) also load the objective."""

    KIND: ClassVar[str] = "check"

    source: str
    objective: dict[str, Any]  # ObjectiveSpec.to_dict(): which model a run counts
    task: str
    vocab_size: int
    seed: int
    values: dict[str, Any] = field(default_factory=dict)  # the candidate's site values
    max_params: int | None = None
    constraint: dict[str, Any] | None = None  # ConstraintSpec.to_dict()
    load_objective: bool = False  # pre-flight: the objective's file must load


@dataclass(frozen=True, slots=True)
class TrainJob(Job):
    """Build the T5 `source` defines (or load `model_dir`'s weights), train it on the
    tokenized pairs, save it to `out` and keep it in the worker
    (`proposers._jobs.train_job`); its value is a `TrainReport`."""

    KIND: ClassVar[str] = "train"
    INPUT_FILES: ClassVar[tuple[str, ...]] = ("tokens", "tokenizer")
    INPUT_FOLDERS: ClassVar[tuple[str, ...]] = ("model_dir",)
    OUTPUT_FOLDERS: ClassVar[tuple[str, ...]] = ("out",)

    source: str
    vocab_size: int
    tokens: str  # tokenized pairs (JSON: input_ids, labels)
    tokenizer: str  # copied next to the saved model
    out: str | None = None  # where the trained model is saved (None: kept in memory only)
    model_dir: str | None = None  # warm start from these weights
    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    samples: int | None = None  # the first N pairs (None: all)
    seed: int = 0
    max_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class GenerateJob(Job):
    """Sample `n` outputs for one tokenized input from the worker's T5 (or `model_dir`'s),
    under a constraint spec when one is given (`proposers._jobs.generate_job`); its value
    is a `GenerateReport`."""

    KIND: ClassVar[str] = "generate"
    INPUT_FILES: ClassVar[tuple[str, ...]] = ("tokenizer",)
    INPUT_FOLDERS: ClassVar[tuple[str, ...]] = ("model_dir",)

    input_ids: tuple[int, ...]
    max_new_tokens: int
    n: int
    seed: int
    tokenizer: str
    model_dir: str | None = None
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    constraint: dict[str, Any] | None = None  # the constraint automaton's spec

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_ids", tuple(int(i) for i in self.input_ids))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "input_ids": list(self.input_ids)}


@dataclass(frozen=True, slots=True)
class GenerationJob(Job):
    """Train one generation of a source quine and return its print with the replication
    scores (`quine._jobs.generation_job`)."""

    KIND: ClassVar[str] = "quine-generation"
    ISOLATED: ClassVar[bool] = True

    source: str
    seed: int
    timeout: float


@dataclass(frozen=True, slots=True)
class TrainReport:
    """What a training job did: the model's size, every step's loss and the totals."""

    # The keys a saved model's ``proposer.json`` repeats (a checkpoint's report).
    SUMMARY: ClassVar[tuple[str, ...]] = ("params", "mean_loss", "final_loss", "steps",
                                          "seconds", "device", "stopped", "warm_start")

    params: int
    steps: int
    seconds: float
    mean_loss: float
    final_loss: float
    device: str
    stopped: str = ""  # why it ended early ("time budget of 60 s"), "" if it did not
    losses: tuple[float, ...] = ()
    sum_loss: float = 0.0
    samples: int = 0
    tokens: int = 0
    tokens_per_s: float = 0.0
    build_seconds: float = 0.0
    dynamics: dict[str, Any] = field(default_factory=dict)
    warm_start: str | None = None  # the model folder it started from

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "losses": list(self.losses)}

    def summary(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.SUMMARY}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainReport:
        names = {f.name for f in fields(cls)}
        found = {k: v for k, v in data.items() if k in names}
        return cls(**{**found, "losses": tuple(float(x) for x in data.get("losses", ()))})


@dataclass(frozen=True, slots=True)
class GenerateReport:
    """What a generation job sampled: token ids (no special tokens) and its time."""

    sequences: tuple[tuple[int, ...], ...]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"sequences": [list(s) for s in self.sequences], "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerateReport:
        return cls(tuple(tuple(int(t) for t in s) for s in data["sequences"]),
                   float(data["seconds"]))


@dataclass(frozen=True, slots=True)
class EvalReport:
    """What an evaluation job found (`evaluator._jobs.evaluate_job`): scored, with the
    objective's value and the metrics; or rejected or failed at a stage, with the reason
    (and the traceback where it raised). The parent adds the variant's hash and checks the
    score (`evaluator.EvalResult.from_dict`)."""

    status: VariantStatus
    stage: str = ""
    reason: str = ""
    traceback: str = ""
    score: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def scored(cls, score: float, metrics: dict[str, Any]) -> EvalReport:
        return cls(VariantStatus.SCORED, score=score, metrics=metrics)

    @classmethod
    def failed(cls, stage: str, reason: str, traceback: str = "",
               metrics: dict[str, Any] | None = None) -> EvalReport:
        return cls(VariantStatus.FAILED, stage, reason, traceback, metrics=metrics or {})

    @classmethod
    def rejected(cls, stage: str, reason: str, metrics: dict[str, Any]) -> EvalReport:
        return cls(VariantStatus.REJECTED, stage, reason, metrics=metrics)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalReport:
        metrics = data.get("metrics")
        return cls(VariantStatus(data["status"]), str(data.get("stage", "")),
                   str(data.get("reason", "")), str(data.get("traceback", "")),
                   data.get("score"), metrics if isinstance(metrics, dict) else {})
