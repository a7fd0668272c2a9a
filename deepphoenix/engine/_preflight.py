"""Pre-flight: every check that can end a run, done before any dataset is made or any
model trained, so that a wrong input fails within seconds with one line instead of after
minutes of preparation. In order:

1. In this process, before the run directory exists (`RunDir.create`): the config, the
   seed (it parses), the grammar's binding (it finds sites in the seed), the objective's
   and the constraint's files (read, their functions checked with `ast`).
2. In a worker, on the seed (`Checker.preflight`, this module): the objective's file
   loads (its imports resolve), the constraint runs on the seed without raising and
   accepts it, the seed builds, and it is within ``--max-params`` (where its size does
   not wait for the run's tokenizer: a T5 on the refinement task is counted at the
   seed's evaluation instead) with a ``model`` to count at all.
3. The proposer's input fits its model (issue 28, the program view and its token-length
   check): its place is `proposer_preflight` below, called before the data are made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deepphoenix.engine._events import Event, Preflighted
from deepphoenix.engine._rundir import RunDir
from deepphoenix.errors import ConfigError, DeepPhoenixError
from deepphoenix.evaluator import Checker, Verdict

__all__ = ["preflight", "proposer_preflight"]


def preflight(run: RunDir, checker: Checker, emit: Callable[[Event], None]) -> None:
    """The worker's checks of the seed (2. above); `ConfigError` or `DeepPhoenixError`
    with one line for the first that fails. Runs no job when there is nothing to check
    (a built-in objective, no constraint, no parameter cap)."""
    rules = checker.settings
    objective = run.objective
    if (objective.builtin or objective.command) and not rules.active:
        return  # nothing of the user's to load, no rule to check
    config = run.config
    seed = run.seed_program
    # A T5 on the refinement task is resized to the run's tokenizer, made after this.
    count = not (objective.uses_task and config.task == "refinement")
    result = checker.preflight(seed.hash, seed.text, seed.values, count)
    emit(Preflighted(verdict=result.verdict, params=result.params, seconds=result.seconds))
    if result.verdict is Verdict.ERROR and result.rule == "objective":
        raise ConfigError(f"the objective {objective.name} does not load in a worker: "
                          f"{result.reason}")
    if result.verdict is Verdict.ERROR:
        raise ConfigError(f"the constraint fails on the seed: {result.reason}; fix it and "
                          "start a new run")
    if result.verdict is Verdict.REJECT:
        raise DeepPhoenixError(f"the seed itself breaks the run's constraints: "
                               f"{result.reason}; the search starts from the seed, so "
                               "loosen --max-params or --constraint, or start from another "
                               "seed")
    if result.verdict is Verdict.UNKNOWN and result.rule == "build" and objective.command:
        # The command never builds the program; the checks do, and cannot.
        raise ConfigError(f"--max-params and --constraint check the program {_first(run)} "
                          "executed on its own (a command objective never executes it), "
                          f"and it fails there: {result.reason}; drop them, or search a "
                          "file that runs on its own")
    if result.verdict is Verdict.UNKNOWN and result.rule == "build":
        raise DeepPhoenixError(f"the seed itself fails at the build stage: {result.reason}")
    if rules.max_params is not None and count and result.verdict is Verdict.PASS \
            and result.params is None and config.constraint_rounds and objective.command:
        raise ConfigError(f"--max-params {rules.max_params:,} counts the parameters of the "
                          f"`model` that {_first(run)} defines, and it defines none (a "
                          "command objective builds its model in its own command); count "
                          "it in a --constraint FILE.py:NAME instead: it gets what "
                          f"{_first(run)} defines and the candidate's site values "
                          "(ctx.values), on the meta device")
    if rules.max_params is not None and count and result.verdict is Verdict.PASS \
            and result.params is None and config.constraint_rounds:
        raise ConfigError(f"--max-params {rules.max_params:,} counts the parameters of the "
                          "program's `model`, and the seed defines none (a torch.nn.Module "
                          "named model); count what your objective builds in a --constraint "
                          "FILE.py:NAME instead (it runs on the meta device: building a "
                          "model there allocates no weights)")


def _first(run: RunDir) -> str:
    """The program a check executes: a project run's first file, by its path."""
    return run.paths[0] if run.paths else "the seed"


def proposer_preflight(run: RunDir, emit: Callable[..., Any]) -> None:
    """The proposer's checks of its input (3. above): the place for the learned
    proposer's token-length check (issue 28, item 1), before any data are made. Nothing
    is checked here yet."""
