"""Every setting a run hands its parts, built from its config in one place, one builder a
concern: the executor (`executor_settings`: its options, the evaluation workers and the
proposer's lane), the evaluation (`eval_settings`, `check_settings`, `eval_worker`) and
the proposer (`sample_settings`, `train_settings`, `proposer_context`). A run, its final
re-score, ``lineage verify --rescore`` and ``deepphoenix evaluate`` all build through
them, so ``evaluate`` scores a file exactly as a run scores a candidate (the same
evaluation seed, batch size, learning rate, worker threads and preload) and checks it
against the same rules."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from deepphoenix.engine._config import RunConfig
from deepphoenix.engine._data import RunData
from deepphoenix.engine._rundir import derive_seed
from deepphoenix.evaluator import (
    CHECK_TIMEOUT,
    CheckSettings,
    ConstraintSpec,
    EvalSettings,
    evaluation_preload,
)
from deepphoenix.executor import Executor, ExecutorSettings
from deepphoenix.objectives import ObjectiveSpec
from deepphoenix.proposers import ProposerContext, SampleSettings, TrainSettings
from deepphoenix.sandbox import WorkerSettings

__all__ = ["check_settings", "eval_settings", "eval_worker", "executor_settings", "lane_worker",
           "lone_evaluator", "proposer_context", "sample_settings", "train_settings"]


def eval_settings(config: RunConfig, objective: ObjectiveSpec, data: RunData,
                  project: Path | None = None, paths: tuple[str, ...] = ()) -> EvalSettings:
    """How every candidate of a run with `config` is scored on `data` (and re-scored:
    `_rescore`); a project run's candidates are evaluated in a copy of `project` with
    their `paths`."""
    return EvalSettings(
        objective=objective, task=config.task, rows=data.rows, vocab_size=data.vocab_size,
        samples=config.fewshot_samples,
        heldout=config.heldout_samples if objective.uses_heldout else 0,
        batch_size=config.fewshot_batch_size, lr=config.fewshot_lr,
        seed=derive_seed(config.seed, "fewshot"), timeout=config.timeout,
        max_params=config.max_params, project=project,
        path=paths[0] if len(paths) == 1 else None,
        link_bytes=int(config.link_over_mb * 2**20))


def check_settings(config: RunConfig, objective: ObjectiveSpec,
                   constraint: ConstraintSpec | None, vocab_size: int) -> CheckSettings:
    """The rules a candidate is checked against before it is evaluated, and what a worker
    needs to build it as the evaluation does (`vocab_size`: the run's tokenizer's)."""
    return CheckSettings(
        objective=objective, task=config.task, vocab_size=vocab_size,
        seed=derive_seed(config.seed, "fewshot"), max_params=config.max_params,
        constraint=constraint, timeout=min(config.timeout, CHECK_TIMEOUT))


def eval_worker(config: RunConfig, objective: ObjectiveSpec, source: str, *,
                hidden: Sequence[str] = (), readable: Sequence[str] = ()) -> WorkerSettings:
    """An evaluation worker of a run with `config` whose seed program is `source`."""
    return WorkerSettings(threads=config.worker_threads(),
                          memory_limit=config.memory_limit_bytes(), device=config.device,
                          hidden=tuple(hidden), readable=tuple(readable),
                          disk_limit=config.disk_limit_bytes(),
                          preload=evaluation_preload(objective, source))


def lane_worker(config: RunConfig, *, hidden: Sequence[str] = (), readable: Sequence[str] = (),
                writable: Sequence[str] = ()) -> WorkerSettings:
    """The proposer's worker (its lane): every evaluation worker's threads (the loop never
    trains or samples while a batch evaluates), no memory limit of its own."""
    return WorkerSettings(threads=max(1, config.worker_threads() * config.workers),
                          memory_limit=None, device=config.device, hidden=tuple(hidden),
                          disk_limit=config.disk_limit_bytes(), readable=tuple(readable),
                          writable=tuple(writable))


def executor_settings(config: RunConfig, objective: ObjectiveSpec, source: str,
                      run_dir: Path) -> ExecutorSettings:
    """What the executor of a run in `run_dir` is told: its options (`ExecutorOptions`), the
    evaluation workers, and the proposer's lane. Workers never see the run directory (its
    database above all): evaluation workers read its data, the proposer's worker writes
    its models' folders (``episodes``)."""
    hidden, data = (str(run_dir),), (str(run_dir / "data"),)
    return config.executor_options().settings(
        workers=config.workers,
        worker=eval_worker(config, objective, source, hidden=hidden, readable=data),
        lane=lane_worker(config, hidden=hidden, readable=data,
                         writable=(str(run_dir / "episodes"),)),
        log_dir=run_dir / "logs")


def lone_evaluator(config: RunConfig, objective: ObjectiveSpec, source: str, *,
                   hidden: Sequence[str] = (), readable: Sequence[str] = ()
                   ) -> ExecutorSettings:
    """One evaluation worker on this machine, as a run with `config` starts each of its own
    (``deepphoenix evaluate``, the re-score)."""
    return ExecutorSettings(workers=1, worker=eval_worker(config, objective, source,
                                                          hidden=hidden, readable=readable))


def sample_settings(config: RunConfig) -> SampleSettings:
    """How a run's T5 proposers sample."""
    return SampleSettings(temperature=config.temperature, top_k=config.top_k,
                          top_p=config.top_p, constrained=config.constrained,
                          rounds=config.draw_rounds)


def train_settings(config: RunConfig) -> TrainSettings:
    """A run's training stage (the seed of each episode's is derived by the proposer)."""
    return TrainSettings(epochs=config.train_epochs, batch_size=config.train_batch_size,
                         lr=config.train_lr, samples=config.train_samples,
                         max_seconds=config.train_max_seconds)


def proposer_context(config: RunConfig, data: RunData, *, run_dir: Path, executor: Executor,
                     objective: ObjectiveSpec, proposer_source: str | None, seed_source: str,
                     emit: Callable[[str, dict[str, Any]], None]) -> ProposerContext:
    """What a run's proposer is given: the config's sampling and training settings, the
    run's data, and what the run directory resolved (`proposer_source`, `seed_source`)."""
    return ProposerContext(
        run_dir=run_dir, executor=executor, seed=config.seed,
        direction=objective.direction, draw_rounds=config.draw_rounds, data=data.proposer,
        sampling=sample_settings(config), training=train_settings(config),
        train_timeout=config.train_timeout, proposer_source=proposer_source,
        seed_source=seed_source, emit=emit, proposer_init=data.proposer_init)
