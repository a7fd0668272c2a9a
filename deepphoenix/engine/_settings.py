"""The settings a run hands its evaluation workers, built from its config in one place, so
that ``deepphoenix evaluate`` scores a file exactly as a run scores a candidate (the same
evaluation seed, batch size, learning rate, worker threads and preload) and checks it
against the same rules."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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
from deepphoenix.objectives import ObjectiveSpec
from deepphoenix.sandbox import WorkerSettings

__all__ = ["check_settings", "eval_settings", "eval_worker"]


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
