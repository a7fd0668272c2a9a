"""`search`: run a search from Python and get its `Study`; `plan_search`, the part that
turns a call's arguments into a checked run config without writing anything (the CLI's
`run` goes through it too: one wiring).

The budget is the number of candidate evaluations: a run spends it as episodes × batches
× candidates (E × B × C, the paper's Algorithm 1), plus one evaluation of the seed.
`budget_shape` says how a budget is split.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from deepphoenix.engine import PLACEMENT, Event, Run, RunConfig, preset, project_folder
from deepphoenix.errors import ConfigError, RunDirError, did_you_mean
from deepphoenix.evaluator import ConstraintSpec, resolve_constraint
from deepphoenix.objectives import Direction, ObjectiveSpec, callable_objective
from deepphoenix.seeds import seed_names
from deepphoenix.store import DB_NAME, RunStore
from deepphoenix.study._execute import execute
from deepphoenix.study._study import Study

__all__ = ["RUNS_DIR", "SearchPlan", "budget_shape", "new_run_dir", "plan_search", "search"]

RUNS_DIR = Path("runs")  # where a run without a run_dir goes, under the working directory
_CONFIG_FIELDS = {f.name for f in fields(RunConfig)} - {"preset"}
# Fields the keyword arguments of `search` name (settings may not name them again).
_NAMED = {"seed_source", "objective", "grammar", "proposer", "strategy", "direction",
          "constraint"}


@dataclass(frozen=True, slots=True)
class SearchPlan:
    """A checked search that has not started: the run config, and the inputs that have no
    name or file (a source string, a callable objective) to store in the run."""

    config: RunConfig
    inputs: dict[str, Any] = field(default_factory=dict)  # RunDir.create's keywords

    def start(self, run_dir: str | Path | None = None,
              on_event: Callable[[Event], None] | None = None, force: bool = False) -> Run:
        """Create the run directory (default: ``runs/<preset>-<proposer>-<time>``) and wire
        the run; `execute` runs it. `force`: use a folder that holds files of the user's
        (none is ever overwritten)."""
        path = Path(run_dir) if run_dir is not None else new_run_dir(
            f"{self.config.preset}-{self.config.proposer}")
        return Run(path, self.config, on_event=on_event, inputs=self.inputs, force=force)

    def matches(self, run_dir: Path) -> list[str]:
        """What differs between this plan and the run stored in `run_dir` (empty: the
        same search, which may be continued)."""
        with RunStore.open(run_dir) as store:
            stored = store.get_meta("config", {})
            seed_text = store.get_meta("seed_text")
            objective = store.objective
            constraint = store.get_meta("constraint")
        mine = json.loads(json.dumps(self.config.to_dict()))  # as the database holds it
        differ = [k for k in sorted(mine) if k not in PLACEMENT
                  and stored.get(k, mine[k]) != mine[k]]
        text = self.inputs.get("seed_text")
        if text is not None and text != seed_text:
            differ.append("source")
        spec = self.inputs.get("objective")
        if isinstance(spec, ObjectiveSpec) and spec.to_dict() != objective:
            differ.append("objective")
        rule = self.inputs.get("constraint")
        if isinstance(rule, ConstraintSpec) and rule.to_dict() != constraint:
            differ.append("constraint")
        return sorted(set(differ))


def plan_search(source: str | Path | None = None, *, objective: Any = None,
                grammar: str | Path | None = None, proposer: str | None = None,
                strategy: str | None = None, budget: int | None = None,
                direction: str | Direction | None = None, constraint: Any = None,
                preset_name: str = "cpu", **settings: Any) -> SearchPlan:
    """Check a search's arguments and resolve them into a `SearchPlan`. Every bad value is
    a `DeepPhoenixError` with one line naming it; nothing is written."""
    unknown = sorted(set(settings) - _CONFIG_FIELDS)
    if unknown:
        name = unknown[0]
        raise ConfigError(f"Unknown setting {name!r}.{did_you_mean(name, _CONFIG_FIELDS)} "
                          "Settings are RunConfig fields (deepphoenix.engine.RunConfig).")
    doubled = sorted(set(settings) & _NAMED - {"seed_source"})
    if doubled:
        raise ConfigError(f"pass {doubled[0]} as search's own argument, not as a setting")
    base = preset(preset_name)
    inputs: dict[str, Any] = {}
    changes: dict[str, Any] = dict(settings)
    if source is not None:
        changes["seed_source"], text = _source(source)
        if text is not None:
            inputs["seed_text"] = text
    if isinstance(direction, Direction):
        direction = direction.value
    if objective is not None and not isinstance(objective, str):
        spec = callable_objective(objective, direction)
        inputs["objective"] = spec
        changes["objective"] = spec.name
        direction = spec.direction.value
    elif objective is not None:
        changes["objective"] = objective
    if constraint is not None:
        rule = resolve_constraint(constraint)  # a bad one fails here, before any run
        if rule.pickled:
            inputs["constraint"] = rule
        changes["constraint"] = rule.name
    for name, value in (("grammar", grammar), ("proposer", proposer),
                        ("strategy", strategy), ("direction", direction)):
        if value is not None:
            changes[name] = str(value)
    if budget is not None:
        changes.update(budget_shape(budget, base, settings))
    config = base.with_overrides(**changes)
    _check_strategy(config.strategy)
    folder = project_folder(config)  # stored as an absolute path (a resume may run elsewhere)
    if folder is not None and (config.project or Path(config.seed_source).is_file()):
        config = config.with_overrides(project=str(folder))
    return SearchPlan(config, inputs)


def budget_shape(budget: Any, base: RunConfig, settings: dict[str, Any]) -> dict[str, int]:
    """Episodes, batches and candidates for a budget of `budget` candidate evaluations.

    Candidates per batch and episodes are the preset's (or the settings'), each cut to
    what the budget allows; batches per episode take the rest: E × B × C is the largest
    such product that does not exceed the budget (a budget of 10 with C=4 and E=3 runs
    E=2, B=1, C=4: 8 evaluations). With E, B and C all given, the budget must be their
    product."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ConfigError(f"Expected a budget of at least 1 evaluation (int) but got "
                          f"budget={budget!r} (type={type(budget).__name__})")
    given: dict[str, int] = {k: settings[k] for k in ("episodes", "batches", "candidates")
                             if k in settings}
    if len(given) == 3:
        product = given["episodes"] * given["batches"] * given["candidates"]
        if product != budget:
            raise ConfigError(f"budget={budget} but episodes x batches x candidates = "
                              f"{product}; give the budget or the three, not both")
        return given
    candidates = int(given.get("candidates", min(base.candidates, budget)))
    episodes = int(given.get("episodes", min(base.episodes, max(1, budget // candidates))))
    batches = int(given.get("batches", max(1, budget // (episodes * candidates))))
    if episodes * batches * candidates > budget:
        raise ConfigError(f"budget={budget} is smaller than episodes x batches x candidates "
                          f"= {episodes * batches * candidates} of the settings given")
    return {"episodes": episodes, "batches": batches, "candidates": candidates}


def _source(source: str | Path) -> tuple[str, str | None]:
    """The config's seed_source and, for Python source given as a string, its text."""
    if isinstance(source, Path):
        return str(source), None
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(f"Expected a seed name, a path or Python source but got "
                          f"source={source!r} (type={type(source).__name__})")
    if source in seed_names():
        return source, None
    if "\n" in source:  # one line of Python is a path: a seed is at least a model
        return "<string>", source
    if not Path(source).exists():
        hint = did_you_mean(source, seed_names())
        raise ConfigError(f"source={source!r} is neither a built-in seed "
                          f"({', '.join(seed_names())}) nor a file.{hint} Python source "
                          "as a string has several lines")
    return source, None


def _check_strategy(name: str) -> None:
    from deepphoenix.engine import get_strategy

    get_strategy(name)  # an unknown strategy fails here, before any run directory exists


def new_run_dir(name: str) -> Path:
    """A fresh ``runs/NAME-<time>`` under the working directory."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = RUNS_DIR / f"{name}-{stamp}"
    suffix = 1
    while candidate.exists():
        suffix += 1
        candidate = RUNS_DIR / f"{name}-{stamp}-{suffix}"
    return candidate


def search(source: str | Path | None = None, *, objective: Any = None,
           grammar: str | Path | None = None, proposer: str | None = None,
           strategy: str | None = None, budget: int | None = None,
           run_dir: str | Path | None = None, direction: str | Direction | None = None,
           constraint: Any = None, quiet: bool = False, preset: str = "cpu",
           on_event: Callable[[Event], None] | None = None, **settings: Any) -> Study:
    """Run a search and return its `Study` when it ends.

    - `source`: a built-in seed name (``"tiny"``, ``"gpt"``, ...), a path, or Python
      source as a string (several lines). Default: the preset's seed.
    - `objective`: a built-in name (``"fewshot"``, ``"val-loss"``, ``"self-replication"``),
      ``"file.py:fn"``, ``"package.module:fn"``, or a Python callable
      ``fn(program, ctx) -> score`` (a number or a mapping with ``"score"``), shipped to
      the sandboxed worker by value (see `deepphoenix.objectives.callable_objective` for
      what can be shipped).
    - `grammar`, `proposer`, `strategy`: names as the CLI takes them (a grammar may also
      be a TOML path or ``"infer"``).
    - `budget`: candidate evaluations, spent as episodes × batches × candidates (see
      `budget_shape`); default: the preset's.
    - `run_dir`: where the run lives (default ``runs/<preset>-<proposer>-<time>``). A
      directory that already holds the same search is continued (a finished one is just
      opened; placement settings such as `workers` may differ); one that holds a
      different search is a `RunDirError`.
    - `direction`: ``"minimize"`` or ``"maximize"`` (default: the objective's own).
    - `constraint`: ``"file.py:fn"``, ``"package.module:fn"`` or a Python callable
      ``fn(program, ctx) -> reason or None``, checked in a sandboxed worker before a
      candidate takes an evaluation slot (the program built on torch's meta device;
      ``ctx.values``, ``ctx.params``); a candidate it rejects is drawn again, up to
      ``constraint_rounds`` draws (see `deepphoenix.evaluator.ConstraintSpec`). The
      ``max_params`` setting is checked the same way.
    - `quiet`: no progress bar. `on_event`: called with every run `Event`.
    - `preset` and `settings`: any `RunConfig` field (``seed=1``, ``workers=2``,
      ``timeout=60.0``, ...), over the preset's values. A project's own training command
      as the objective: ``objective="cmd:python train.py …", metric="val loss
      ([0-9.]+)"``; more files of the candidate: ``with_sources=["config/small.py"]``;
      the folder its workspace is made from: ``project="."`` (default: the source's).
    """
    plan = plan_search(source, objective=objective, grammar=grammar, proposer=proposer,
                       strategy=strategy, budget=budget, direction=direction,
                       constraint=constraint, preset_name=preset, **settings)
    if run_dir is not None and (Path(run_dir) / DB_NAME).exists():
        differ = plan.matches(Path(run_dir))
        if differ:
            raise RunDirError(f"{run_dir} holds a different search (it differs in "
                              f"{', '.join(differ)}); pass another run_dir, or open it "
                              f"with deepphoenix.load({str(run_dir)!r})")
        study = Study(run_dir)
        if study.status == "finished":
            return study
        placement = {k: v for k, v in settings.items() if k in PLACEMENT}  # workers=...
        return study.resume(quiet=quiet, on_event=on_event, **placement)
    run = plan.start(run_dir)
    summary = execute(run, quiet=quiet, on_event=on_event)
    return Study(run.run_dir, summary)
