"""Runs: the self-reprogramming loop and the pieces around it, one module a stage —
`RunConfig` and presets (`_config`), the run directory and its lock (`_rundir`), the data
(`_data`), the loop (`_loop`; without batch barriers, `_async`), search strategies
(`_strategy`), multi-fidelity rungs (`_fidelity`), the pre-flight checks (`_preflight`),
the settings builders, one a concern: executor, evaluation, proposer (`_settings`,
shared with ``deepphoenix evaluate`` and the final re-score, `_rescore`), a run's project
(`_project`), and `Run`, which wires them up (`_run`)."""

from deepphoenix.engine._async import AsyncLoop
from deepphoenix.engine._builtin_init import (
    BUILTIN_INIT,
    BUILTIN_PROGRAMS,
    PER_PROGRAM,
    BuiltinPairs,
    builtin_pairs,
    resolve_init,
    shipped_init,
)
from deepphoenix.engine._config import PLACEMENT, PRESETS, TASK_NAMES, TRAIN_ON, RunConfig, preset
from deepphoenix.engine._data import RunData, needs_pairs, prepare_run_data
from deepphoenix.engine._fidelity import FIDELITIES, rung_resources
from deepphoenix.engine._loop import Event, SearchLoop
from deepphoenix.engine._pretrain import RunPairs, pretraining_pairs
from deepphoenix.engine._project import Project, project_folder, read_project
from deepphoenix.engine._run import Run, RunSummary
from deepphoenix.engine._rundir import RunDir, derive_seed, load_seed_text
from deepphoenix.engine._settings import (
    check_settings,
    eval_settings,
    eval_worker,
    executor_settings,
    lone_evaluator,
    proposer_context,
    sample_settings,
    train_settings,
)
from deepphoenix.engine._strategy import (
    Async,
    BestOfN,
    Greedy,
    Scored,
    Strategy,
    best_of,
    get_strategy,
    strategy_names,
)

__all__ = [
    "BUILTIN_INIT",
    "BUILTIN_PROGRAMS",
    "FIDELITIES",
    "PER_PROGRAM",
    "PLACEMENT",
    "PRESETS",
    "TASK_NAMES",
    "TRAIN_ON",
    "Async",
    "AsyncLoop",
    "BestOfN",
    "BuiltinPairs",
    "Event",
    "Greedy",
    "Project",
    "Run",
    "RunConfig",
    "RunData",
    "RunDir",
    "RunPairs",
    "RunSummary",
    "Scored",
    "SearchLoop",
    "Strategy",
    "best_of",
    "builtin_pairs",
    "check_settings",
    "derive_seed",
    "eval_settings",
    "eval_worker",
    "executor_settings",
    "get_strategy",
    "load_seed_text",
    "lone_evaluator",
    "needs_pairs",
    "prepare_run_data",
    "preset",
    "pretraining_pairs",
    "project_folder",
    "proposer_context",
    "read_project",
    "resolve_init",
    "rung_resources",
    "sample_settings",
    "shipped_init",
    "strategy_names",
    "train_settings",
]
