"""`RunConfig`: every knob of a run in one object, with presets. The resolved config is
saved in the run directory (``config.json`` and the run database) and a resumed run reads
it back from there."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from deepphoenix.device import check_device
from deepphoenix.engine._fidelity import check_fidelity, rung_resources
from deepphoenix.engine._strategy import get_strategy, strategy_names
from deepphoenix.errors import ConfigError, UnknownNameError
from deepphoenix.executor import OPTION_FIELDS, TRAIN_ON, ExecutorOptions
from deepphoenix.objectives import (
    Direction,
    is_command,
    parse_metric,
    uses_heldout,
    uses_task,
)
from deepphoenix.proposers import (
    accepts_init,
    needs_refinement_data,
    proposer_names,
    reads_program_view,
)
from deepphoenix.sandbox import default_memory_limit

TASK_NAMES = ("refinement", "code-lm")  # the built-in objectives' data
# Fields that say where and with how much jobs run, not what they compute: a resumed run
# may change them (a run started with too many workers resumes with fewer, a time-limited
# one resumes with a new limit, a local run moves onto a cluster: the executor's options,
# `OPTION_FIELDS`). A change of
# threads per worker can change float reduction order: the resume warns when it does.
PLACEMENT = (*OPTION_FIELDS, "workers", "threads", "memory_limit_gb", "time_limit",
             "disk_limit_gb")

__all__ = ["PLACEMENT", "PRESETS", "TRAIN_ON", "RunConfig", "preset"]


@dataclass(frozen=True, slots=True)
class RunConfig:
    # -- what evolves ---------------------------------------------------------------------
    preset: str = "cpu"  # the preset these values started from
    seed_source: str = "tiny"  # a built-in seed (paper, tiny, tiny-train, gpt, quine-*) or a file
    grammar: str = "t5"  # grammar name, TOML path, or "infer"
    with_sources: tuple[str, ...] = ()  # more files of a candidate (a config, a script): one
    #                                     grammar over all, each edit in the file owning it
    project: str | None = None  # the folder a candidate's workspace is made from (None: the
    #                             source's, when the objective is a command or files are --with)
    link_over_mb: float = 1.0  # project files larger than this are linked read-only, not copied
    # -- how a candidate is scored --------------------------------------------------------
    objective: str = "fewshot"  # fewshot (paper) | val-loss | PATH.py:NAME | pkg.module:NAME
    #                             | cmd:COMMAND (the project's own command, with `metric`)
    metric: str | None = None  # cmd: a regex with one group (its last match on stdout)
    #                            or json:PATH:KEY (a file the command writes)
    direction: str | None = None  # minimize | maximize (None: the objective's own)
    task: str = "refinement"  # built-in objectives' data: refinement (paper) | code-lm
    heldout_samples: int = 64  # val-loss: the last K rows, never trained on
    block_size: int = 64  # code-lm: bytes a model reads per row
    max_params: int | None = None  # reject a candidate above this many parameters
    constraint: str | None = None  # PATH.py:NAME | module:NAME: NAME(program, ctx) -> reason
    #                                 or None, checked before a candidate is evaluated
    constraint_rounds: int = 8  # draws per slot whose candidate breaks --max-params or
    #                             --constraint (0: no check before evaluation, as before)
    # -- how ------------------------------------------------------------------------------
    proposer: str = "learned"  # learned | t5 (the paper's) | tpe | random (grammar draws)
    proposer_source: str | None = None  # the T5 that proposes: self | a seed | a file
    #                                     (None: self for the refinement task, else tiny)
    proposer_init: str | None = None  # a model `proposer pretrain` wrote: the learned
    #                                   proposer's first weights (None: a cold start)
    strategy: str = "greedy"  # greedy (the paper) | best-of-n (every candidate from the seed)
    #                           | async (no batch barrier: one candidate per free worker)
    fidelity: str = "full"  # full (every candidate pays the whole budget) | asha
    eta: int = 3  # asha: each rung eta x the one below; the top 1/eta of a rung go up
    min_resource: int | None = None  # asha: rung 0's rows (user objective: steps);
    #                                  None: the full budget / eta**2 (three rungs)
    max_steps: int | None = None  # asha + a user objective: the steps a full evaluation
    #                               reports through ctx.report (its top rung)
    time_limit: float | None = None  # async: seconds after which no new candidate starts
    format: str = "source"  # what the model writes: source (paper) | edits (site=value)
    constrained: bool = True  # constrained decoding: copy the parent, choose inside literals
    episodes: int = 3  # E: training stage + B batches each (paper: 10)
    batches: int = 3  # B: greedy steps per episode (paper: 8)
    candidates: int = 4  # C: candidates sampled per batch (paper: 8)
    # -- data -----------------------------------------------------------------------------
    dataset_size: int = 4096  # refinement pairs generated once per run
    vocab_size: int = 1024  # byte-level BPE size (CodeT5: 32100)
    pre_tokenizer: str = "digits"  # digits | none | gpt2
    vocabulary: str = "shared"  # a view-reading proposer's tokenizer: shared (shipped) | run
    # -- training stage (the proposer model of each episode) -----------------------------
    train_epochs: int = 2
    train_samples: int | None = 2048  # first N pairs (None: all)
    train_batch_size: int = 32
    train_lr: float = 1e-3
    train_max_seconds: float | None = None  # cut a long training stage short
    train_timeout: float = 7200.0  # hard limit on a training stage (kills its worker)
    # -- few-shot score -------------------------------------------------------------------
    fewshot_samples: int = 256  # one epoch over the first N pairs (paper: 1024)
    fewshot_batch_size: int = 16
    fewshot_lr: float = 1e-3
    # -- sampling -------------------------------------------------------------------------
    temperature: float = 1.0
    top_k: int = 0  # 0: no cut
    top_p: float = 1.0
    draw_rounds: int = 4  # draws per batch for slots that repeat a candidate (paper: 1)
    # -- execution ------------------------------------------------------------------------
    seed: int = 0  # everything random derives from it: same seed, same run
    device: str = "auto"  # auto (CUDA when present) | cpu | cuda | cuda:N
    # The executor's options (`ExecutorOptions`, validated by the executor package):
    executor: str = "local"  # where sandboxed jobs run: local (persistent workers) | ray
    ray_address: str | None = None  # ray: the head's HOST:PORT (None: a local instance)
    gpus_per_eval: float = 0.0  # ray: GPUs an evaluation worker reserves (0.25: 4 share one)
    train_on: str = "cpu"  # ray: where the proposer trains and samples: cpu | gpu (1 GPU)
    workers: int = 1  # evaluation workers
    threads: int = 0  # torch threads per worker (0: cores / workers)
    timeout: float = 600.0  # seconds per candidate evaluation (hard; kills the worker)
    memory_limit_gb: float | None = None  # per worker, CPU only (None: 80% of RAM / workers)
    disk_limit_gb: float | None = None  # per worker workspace and per file (None: 10 GiB)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["with_sources"] = list(self.with_sources)  # as JSON stores it
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown run config keys: {', '.join(unknown)}")
        config = cls(**data)
        config.validate()
        return config

    def __post_init__(self) -> None:
        if isinstance(self.with_sources, list | str):  # from JSON, or one file given bare
            files = [self.with_sources] if isinstance(self.with_sources, str) else \
                self.with_sources
            object.__setattr__(self, "with_sources", tuple(files))

    def uses_project(self) -> bool:
        """Whether a candidate is evaluated in a workspace made from a project folder: a
        command objective, several files, or a project named."""
        return bool(self.project or self.with_sources or is_command(self.objective))

    def with_overrides(self, **changes: Any) -> RunConfig:
        config = replace(self, **{k: v for k, v in changes.items() if v is not None})
        config.validate()
        return config

    # -- derived values -------------------------------------------------------------------
    def executor_options(self) -> ExecutorOptions:
        """The executor's options this config holds as flat fields (`OPTION_FIELDS`)."""
        return ExecutorOptions.of(self)

    def with_executor_options(self, options: ExecutorOptions) -> RunConfig:
        """This config with the executor's options replaced by `options` (validated)."""
        config = replace(self, **options.to_dict())
        config.validate()
        return config

    def worker_threads(self) -> int:
        return self.threads or max(1, (os.cpu_count() or 1) // self.workers)

    def memory_limit_bytes(self) -> int | None:
        if self.memory_limit_gb is not None:
            return int(self.memory_limit_gb * 2**30)  # 0: no limit (WorkerSettings' 0)
        return default_memory_limit(self.workers)

    def disk_limit_bytes(self) -> int | None:
        """A worker's disk budget: None for the sandbox's default, 0 for none."""
        return None if self.disk_limit_gb is None else int(self.disk_limit_gb * 2**30)

    def proposer_source_spec(self) -> str | None:
        """The source that defines the proposing T5: None for the paper's self-reference
        (the program's own model), else a seed name or a file. Self-reference is the
        default where the program must be a seq2seq model anyway (built-in objectives on
        the refinement task); otherwise the tiny seed proposes."""
        if self.proposer_source == "self":
            return None
        if self.proposer_source is None:
            self_referential = self.task == "refinement" and uses_task(self.objective)
            return None if self_referential else "tiny"
        return self.proposer_source

    def validate(self) -> None:
        choices = {
            "proposer": proposer_names(), "format": ("source", "edits"),
            "pre_tokenizer": ("digits", "none", "gpt2"), "task": tuple(TASK_NAMES),
            "vocabulary": ("shared", "run"),
        }
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise UnknownNameError(name.replace("_", "-"), str(value), allowed)
        check_device(self.device)
        if self.direction is not None:
            Direction.parse(self.direction)
        if not isinstance(self.objective, str) or not self.objective:
            raise ConfigError(f"Expected an objective name but got objective={self.objective!r}")
        positive_ints = ("episodes", "batches", "candidates", "dataset_size", "train_epochs",
                         "train_batch_size", "fewshot_samples", "fewshot_batch_size", "workers",
                         "heldout_samples", "block_size")
        for name in positive_ints:
            _check_int(name, getattr(self, name), 1)
        _check_int("vocab_size", self.vocab_size, 261)
        _check_int("threads", self.threads, 0)
        _check_int("top_k", self.top_k, 0)
        _check_int("draw_rounds", self.draw_rounds, 1)
        _check_int("constraint_rounds", self.constraint_rounds, 0)
        if self.constraint is not None:
            if not isinstance(self.constraint, str) or not self.constraint.strip():
                raise ConfigError(f"Expected PATH.py:NAME or module:NAME but got "
                                  f"constraint={self.constraint!r}")
            if self.constraint_rounds < 1:
                raise ConfigError("--constraint is checked before a candidate is evaluated: "
                                  "it needs constraint_rounds >= 1")
        if self.train_samples is not None:
            _check_int("train_samples", self.train_samples, 1)
        slots = self.episodes * self.batches * self.candidates
        if slots > _MAX_SLOTS:
            raise ConfigError(f"episodes x batches x candidates = {slots:,} is over the limit "
                              f"of {_MAX_SLOTS:,} candidate slots")
        if self.max_params is not None:
            _check_int("max_params", self.max_params, 1)
        if self.task == "refinement":
            heldout = uses_heldout(self.objective)
            needed = self.fewshot_samples + (self.heldout_samples if heldout else 0)
            if needed > self.dataset_size:
                raise ConfigError(f"fewshot_samples={self.fewshot_samples}"
                                  + (f" + heldout_samples={self.heldout_samples}"
                                     if heldout else "")
                                  + f" is more than dataset_size={self.dataset_size}")
        for name in ("train_lr", "fewshot_lr", "temperature"):
            _check_positive(name, getattr(self, name))
        for name in ("timeout", "train_timeout", "train_max_seconds"):
            if getattr(self, name) is not None:
                _check_positive(name, getattr(self, name), _MAX_SECONDS)
        if self.memory_limit_gb is not None:
            _check_positive("memory_limit_gb", self.memory_limit_gb, 2.0**20, zero=True)
        if self.disk_limit_gb is not None:
            _check_positive("disk_limit_gb", self.disk_limit_gb, 2.0**20, zero=True)
        self.executor_options().validate()  # the executor's own rules
        self._validate_fidelity()
        self._validate_project()
        if self.proposer_init is not None and not accepts_init(self.proposer):
            warm = [n for n in proposer_names() if accepts_init(n)]
            raise ConfigError(f"--proposer-init starts a learned proposer ({', '.join(warm)}) "
                              f"from a pretrained model; proposer {self.proposer!r} has none")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"Expected 0 < top_p <= 1 but got top_p={self.top_p!r}")


    def fidelity_budget(self) -> tuple[int, str]:
        """The full budget a rung is a share of, and the option that sets it: few-shot
        rows for the built-ins that train on the task, reported steps otherwise (a user
        objective, self-replication)."""
        if uses_task(self.objective):  # the built-ins that train on rows
            return self.fewshot_samples, "fewshot_samples"
        return self.max_steps or 0, "max_steps"

    def rungs(self) -> list[int] | None:
        """The budget of each ASHA rung (None at full fidelity)."""
        if self.fidelity != "asha":
            return None
        top, what = self.fidelity_budget()
        return rung_resources(top, self.eta, self.min_resource, what)

    def _validate_fidelity(self) -> None:
        check_fidelity(self.fidelity)
        if isinstance(self.strategy, str) and self.strategy not in strategy_names():
            raise UnknownNameError("strategy", self.strategy, strategy_names())
        _check_int("eta", self.eta, 2)
        if self.min_resource is not None:
            _check_int("min_resource", self.min_resource, 1)
        if self.max_steps is not None:
            _check_int("max_steps", self.max_steps, 1)
        if self.time_limit is not None:
            _check_positive("time_limit", self.time_limit, _MAX_SECONDS)
            if not get_strategy(self.strategy).steady:
                raise ConfigError("--time-limit needs --strategy async (a batch strategy's "
                                  "budget is episodes x batches x candidates)")
        if self.fidelity == "asha":
            if self.fidelity_budget()[0] < 1:
                raise ConfigError(f"--fidelity asha with objective {self.objective!r} needs "
                                  "--max-steps N: the steps a full evaluation reports "
                                  "through ctx.report (ctx.should_stop() turns True at a "
                                  "rung's share of it)")
            self.rungs()

    def _validate_project(self) -> None:
        """Several files, a project, a command objective and its metric, together."""
        if not all(isinstance(f, str) and f for f in self.with_sources):
            raise ConfigError(f"Expected file paths but got with_sources={self.with_sources!r}")
        _check_positive("link_over_mb", self.link_over_mb, 2.0**30, zero=True)
        if is_command(self.objective):
            if not self.metric:
                raise ConfigError(f"objective {self.objective!r} needs --metric: where its "
                                  "score is read, a regular expression with one group (e.g. "
                                  "'val loss ([0-9.]+)') or json:PATH:KEY")
            if parse_metric(self.metric).is_json and self.fidelity == "asha":
                raise ConfigError("--fidelity asha stops a command at a rung by the steps it "
                                  "prints; --metric json:PATH:KEY reads one value at the end: "
                                  "give a regular expression")
        elif self.metric:
            raise ConfigError(f"--metric reads the output of a command objective (cmd:…); "
                              f"objective {self.objective!r} is not one")
        if self.uses_project() and uses_task(self.objective):
            raise ConfigError(f"the {self.objective} objective scores one program on the "
                              "task's data; --with and --project are for a command objective "
                              "(cmd:…) or your own")
        if self.with_sources:
            if self.grammar == "infer":
                raise ConfigError("--with needs a grammar that names its sites, not 'infer'")
            if needs_refinement_data(self.proposer) and not reads_program_view(self.proposer):
                raise ConfigError(f"proposer {self.proposer!r} reads the whole source of one "
                                  "file; a run over several files (--with) proposes with one "
                                  "that reads site values or the program view: --proposer "
                                  "learned, tpe, gp or random")


# Upper bounds: past them a value is a typo, and the run would crash or grow without bound
# instead of running (a timeout of 1e300 overflows the clock, a vocabulary of 1e9 aborts the
# tokenizer, a billion samples fill the parent's memory before anything is sandboxed).
_MAX_SECONDS = 30 * 24 * 3600.0
_MAX_SLOTS = 1_000_000  # episodes x batches x candidates
_MAX_INT = {
    "episodes": 100_000, "batches": 100_000, "candidates": 4096, "dataset_size": 10_000_000,
    "fewshot_samples": 10_000_000, "heldout_samples": 1_000_000, "train_samples": 10_000_000,
    "train_epochs": 100_000, "train_batch_size": 65_536, "fewshot_batch_size": 65_536,
    "workers": 256, "block_size": 65_536, "vocab_size": 262_144, "threads": 4096,
    "draw_rounds": 64, "constraint_rounds": 64, "top_k": 1_000_000, "eta": 64,
    "min_resource": 10_000_000, "max_steps": 100_000_000,
}


def _check_int(name: str, value: Any, minimum: int) -> None:
    maximum = _MAX_INT.get(name)
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    if not ok or (maximum is not None and value > maximum):
        bound = f"{minimum} <= int <= {maximum:,}" if maximum is not None else f"int >= {minimum}"
        raise ConfigError(f"Expected {bound} but got {name}={value!r} "
                          f"(type={type(value).__name__})")


def _check_positive(name: str, value: Any, maximum: float | None = None,
                    zero: bool = False) -> None:
    ok = (isinstance(value, int | float) and not isinstance(value, bool)
          and (value > 0 or (zero and value == 0)) and math.isfinite(value))
    if not ok or (maximum is not None and value > maximum):
        bound = f" <= {maximum:g}" if maximum is not None else ""
        raise ConfigError(f"Expected a positive number{bound} but got {name}={value!r} "
                          f"(type={type(value).__name__})")


PRESETS: dict[str, RunConfig] = {
    # CI: the whole loop, tiny everything, well under a minute on two cores.
    "smoke": RunConfig(
        preset="smoke", seed_source="tiny", episodes=2, batches=2, candidates=3,
        dataset_size=256, vocab_size=400, train_epochs=1, train_samples=128,
        fewshot_samples=32, fewshot_batch_size=16, timeout=120.0,
    ),
    # The default of `deepphoenix run`: a tiny seed that shows selection working in a few
    # minutes on a laptop-class CPU. Sized so that even the largest model the t5 grammar
    # allows at this width (8+8 layers, d_ff 4096: 18.4 M parameters) keeps the run under
    # ten minutes on two cores: 64 training steps per episode, two evaluation workers.
    "cpu": RunConfig(preset="cpu", train_samples=1024, workers=2),
    # The paper: E=10, B=8, C=8, 1024 few-shot samples, the paper seed, the paper's
    # proposer (t5: the program's own model, trained from scratch each episode). A GPU.
    "paper": RunConfig(
        preset="paper", seed_source="paper", proposer="t5", episodes=10, batches=8, candidates=8,
        dataset_size=8192, train_epochs=3, train_samples=None, fewshot_samples=1024,
        fewshot_batch_size=16, timeout=1800.0,
    ),
    # The second built-in task: a small GPT (its own learning dynamics) learning to model
    # Python standard-library source, byte by byte, scored by held-out loss. Proposals
    # from Optuna's GP-BO: on held-out run seeds 300-304 it was best or tied-best here
    # (median 2.615, better than `learned` on 4 of 5 seeds; benchmarks/RESULTS.md,
    # issue 23). With `--proposer learned`, a tiny T5 trained on the GPT program's
    # refinements (edit scripts): a 2048-token BPE reads the 110-line program in about
    # 106 tokens (1024 tokens: about 700, and a training stage several times slower).
    "gpt-cpu": RunConfig(
        preset="gpt-cpu", seed_source="gpt", grammar="gpt", objective="val-loss",
        task="code-lm", proposer="gp", format="edits", episodes=2, batches=3, candidates=4,
        dataset_size=1024, vocab_size=2048, train_epochs=1, train_samples=512,
        fewshot_samples=256, heldout_samples=64, workers=2, timeout=300.0,
    ),
    # Neural quines: the coordinate-query weight quine, from the write-up's described recipe
    # (batch norm, regeneration), its recipe (query encoding, normalisation, gradient steps,
    # regeneration and its step, optimizer, lr, steps) searched for the lowest relative
    # replication error at the size the source fixes: the `quine` grammar never proposes
    # `size` (a smaller quine is easier, so a search that shrinks it wins nothing real;
    # `--grammar quine-sized` searches it too, for `lineage pareto`'s error-against-size
    # front). Every site is a categorical or numeric literal, so TPE models the
    # space directly; a T5 proposer would first spend a training stage learning to copy a
    # file whose every choice is already a site. Each evaluation stops training at 3/4 of
    # its 60 s timeout. A T5 proposer (`--proposer learned`) gets gpt-cpu's small training
    # stage and writes edit scripts: with the defaults (4,096 pairs of the whole file, a
    # 1,024-token BPE) its first stage alone outlasted eleven minutes on two cores.
    # `--fidelity asha` splits the training steps (the quine's train reports each one):
    # max_steps is the grammar's largest `steps`, so rungs of 2,222, 6,667 and 20,000 steps.
    "quine-cpu": RunConfig(
        preset="quine-cpu", seed_source="quine-coords", grammar="quine",
        objective="self-replication", proposer="tpe", format="edits", episodes=2,
        batches=3, candidates=4, dataset_size=1024, vocab_size=2048, train_epochs=1,
        train_samples=512, workers=2, timeout=60.0, max_steps=20000,
    ),
}


def preset(name: str) -> RunConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownNameError("preset", name, PRESETS) from None
