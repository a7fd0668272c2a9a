"""`Run`: one run directory, wired up. It creates or resumes the directory (`RunDir`),
starts the executor, runs the pre-flight checks (`_preflight`), makes the data
(`prepare_run_data`), starts the proposer, the checker and the evaluator from the config,
hands them to the search loop (`make_loop`), and writes the summary."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepphoenix.engine._async import make_loop
from deepphoenix.engine._config import PLACEMENT, RunConfig
from deepphoenix.engine._data import RunData, prepare_run_data
from deepphoenix.engine._events import (
    DataMade,
    Event,
    RunDone,
    RunStarted,
    RunSummary,
    SandboxLine,
    Warned,
    event_of,
)
from deepphoenix.engine._loop import unevaluable
from deepphoenix.engine._preflight import preflight, proposer_preflight
from deepphoenix.engine._render import render_files, render_source
from deepphoenix.engine._rescore import rescore_best
from deepphoenix.engine._rundir import RunDir
from deepphoenix.engine._settings import (
    check_settings,
    eval_settings,
    executor_settings,
    proposer_context,
)
from deepphoenix.engine._strategy import get_strategy
from deepphoenix.errors import ConfigError
from deepphoenix.evaluator import Checker, EvalSettings, Evaluator
from deepphoenix.executor import ExecutorOptions, ExecutorSettings, get_executor
from deepphoenix.mutator import Bundle
from deepphoenix.proposers import (
    ProposerContext,
    get_proposer,
    needs_refinement_data,
    reads_program_view,
)
from deepphoenix.sandbox import confinement, sandbox_line
from deepphoenix.store import RunStore
from deepphoenix.store_io import write_text_atomic, write_tree

__all__ = ["Run", "RunSummary"]


class Run:
    """One run directory: create it or resume it, then `execute`."""

    def __init__(self, run_dir: Path, config: RunConfig | None = None, *, resume: bool = False,
                 on_event: Callable[[Event], None] | None = None,
                 placement: dict[str, Any] | None = None,
                 inputs: dict[str, Any] | None = None, force: bool = False) -> None:
        """`placement` (resume only): fields of `PLACEMENT` to change for this session, such
        as moving a run onto a Ray cluster; they change where jobs run, never a result.
        `inputs` (new runs only): `RunDir.create`'s keywords (source text, grammar TOML,
        objective) for inputs the config cannot name. `force` (a new run): use a folder
        that holds files of the user's."""
        if resume:
            self.dir = RunDir.open(Path(run_dir))
            if placement:
                self._place(placement)
        else:
            if config is None:
                raise ConfigError("a new run needs a config")
            self.dir = RunDir.create(Path(run_dir), config, force=force, **(inputs or {}))
        self.on_event = on_event
        self.strategy = get_strategy(self.config.strategy)

    def _place(self, placement: dict[str, Any]) -> None:
        other = sorted(set(placement) - set(PLACEMENT))
        if other:
            self.dir.close()
            raise ConfigError(f"a resumed run keeps its stored config; drop {', '.join(other)}")
        config = self.dir.config
        try:
            if placement.get("executor") == "local":  # back from a cluster: drop its options
                config = config.with_executor_options(ExecutorOptions())
            self.dir.config = config.with_overrides(**placement)
        except BaseException:
            self.dir.close()
            raise
        self.dir.warnings.clear()
        self.dir.check_environment()  # against the config this session runs with

    @property
    def run_dir(self) -> Path:
        return self.dir.path

    @property
    def store(self) -> RunStore:
        return self.dir.store

    @property
    def config(self) -> RunConfig:
        return self.dir.config

    def emit(self, event: Event) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def execute(self) -> RunSummary:
        began = time.monotonic()
        c = self.config
        objective = self.dir.objective
        self.emit(RunStarted(run_dir=str(self.run_dir), config=c.to_dict(),
                             objective=objective.name, direction=objective.direction.value,
                             resumed=self.store.evaluations_done() > 0))
        for message in self.dir.warnings:
            self.emit(Warned(message))
        confined = confinement()
        if c.executor == "local":  # which sandbox, said once at the start
            settings = self._executor_settings()
            self.emit(SandboxLine(sandbox_line(settings.worker, settings.workers)))
        if not confined.available and c.executor == "local":  # said once, plainly
            self.emit(Warned(f"workers run without mount and PID namespaces "
                             f"({confined.reason}): candidates can see your files and "
                             "processes (docs/sandbox.md)"))
        # The executor first: a cluster that cannot serve the run fails before any work,
        # and remote workers start (import torch) while the data is made.
        executor = get_executor(c.executor, self._executor_settings())
        try:
            # Every check that can end the run, before any data is made (_preflight).
            checker = Checker(executor, check_settings(c, objective, self.dir.constraint,
                                                       c.vocab_size))
            preflight(self.dir, checker, self.emit)
            proposer_preflight(self.dir, self.emit)
            data = prepare_run_data(self.run_dir / "data", c, self.dir.seed_program,
                                    needs_refinement_data(c.proposer),
                                    view=reads_program_view(c.proposer))
            if data.proposer is not None:
                self.emit(DataMade(pairs=data.proposer.pairs,
                                   vocab_size=data.proposer.vocab_size,
                                   mean_input_tokens=data.proposer.mean_input_tokens,
                                   view=data.proposer.view is not None))
            checker = Checker(executor, check_settings(c, objective, self.dir.constraint,
                                                       data.vocab_size))
            # Checked before evaluation only where the run asks (runs from before the
            # check, constraint_rounds 0, met --max-params at the build stage).
            checks = checker if checker.settings.active and c.constraint_rounds else None
            proposer = get_proposer(c.proposer, self._proposer_context(executor, data))
            try:
                evaluator = Evaluator(executor, self._eval_settings(data))
                loop = make_loop(self.dir, proposer, evaluator, self.strategy, self.emit,
                                 checks)
                best = loop.execute()
                # Never reported on the word of the process that scored it (_rescore).
                seed = self.dir.seed_program
                best = rescore_best(self.store, evaluator, best, seed.hash,
                                    lambda row: render_source(seed, row), self.emit)
            finally:
                proposer.close()
        finally:
            executor.close()
        summary = self._finish(best, time.monotonic() - began)
        self.emit(RunDone(summary))
        return summary

    # -- wiring ------------------------------------------------------------------------------
    def _executor_settings(self) -> ExecutorSettings:
        for folder in ("data", "episodes"):  # a bind needs its folder before the worker
            (self.run_dir / folder).mkdir(exist_ok=True)
        return executor_settings(self.config, self.dir.objective, self.dir.seed_program.text,
                                 self.run_dir)

    def _proposer_context(self, executor: Any, data: RunData) -> ProposerContext:
        def emit(kind: str, fields: dict[str, Any]) -> None:  # the proposer's: a record here
            self.emit(event_of(kind, fields))

        return proposer_context(self.config, data, run_dir=self.run_dir, executor=executor,
                                objective=self.dir.objective,
                                proposer_source=self.dir.proposer_source,
                                seed_source=self.dir.seed_program.text, emit=emit)

    def _eval_settings(self, data: RunData) -> EvalSettings:
        return eval_settings(self.config, self.dir.objective, data, self.dir.project,
                             self.dir.paths)

    # -- the end -----------------------------------------------------------------------------
    def _finish(self, best: str, seconds: float) -> RunSummary:
        best_row = self.store.variant(best)
        seed_row = self.store.variant(self.dir.seed_program.hash)
        assert best_row is not None and seed_row is not None
        # Rendered from the seed and the recorded values, never the stored text.
        if isinstance(self.dir.seed_program, Bundle):  # every file, at its path
            best_path = self.run_dir / "best"
            write_tree(best_path, render_files(self.dir.seed_program, best_row))
        else:
            best_path = self.run_dir / "best.py"
            write_text_atomic(best_path, render_source(self.dir.seed_program, best_row))
        objective = self.dir.objective
        summary = RunSummary(
            run_dir=self.run_dir, objective=objective.name,
            direction=objective.direction, seed_hash=seed_row.hash,
            seed_score=seed_row.score, seed_params=seed_row.metrics.get("params"),
            best_hash=best, best_score=best_row.score,
            best_params=best_row.metrics.get("params"),
            evaluations=self.store.evaluations_done(), seconds=seconds, best_path=best_path,
            rescore=_verdict(self.store.get_meta("rescore"), best),
            nothing_evaluated=self._nothing_evaluated(),
        )
        with self.store.transaction():
            self.store.set_meta("status", "finished")
            self.store.set_meta("best", best)
            self.store.set_meta("finished_at", time.time())
        write_text_atomic(self.run_dir / "summary.json",
                          json.dumps(summary.to_dict(), indent=2) + "\n")
        return summary

    def _nothing_evaluated(self) -> str:
        """Why the run evaluated nothing but its seed, or "" when it evaluated more."""
        if self.store.evaluations_done() > 1:
            return ""
        attempts = self.store.attempts()
        if not attempts:
            return "the run evaluated nothing but its seed: no candidate was proposed"
        proposers = ", ".join(dict.fromkeys(a.proposer for a in attempts))
        return (f"the run evaluated nothing but its seed: none of the {len(attempts)} "
                f"proposals of {proposers} could be evaluated: "
                f"{unevaluable(self.store, attempts)}")

    def close(self) -> None:
        self.dir.close()


def _verdict(found: Any, best: str) -> str:
    """The stored re-score verdict of `best` ("" when there is none)."""
    for entry in found if isinstance(found, list) else []:
        if isinstance(entry, dict) and entry.get("hash") == best:
            return str(entry.get("verdict", ""))
    return ""
