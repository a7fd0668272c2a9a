"""docs/architecture.md's "How to add ..." recipes, followed from outside the package: a toy
executor and a toy kind of structural site, each written here against the public base
classes and registered, then used the way deepphoenix uses its own."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import libcst as cst
import pytest

from deepphoenix.errors import ConfigError, GrammarError, SiteError
from deepphoenix.executor import (
    EXECUTORS,
    Executor,
    ExecutorSettings,
    LocalExecutor,
    Progress,
    Submission,
    get_executor,
)
from deepphoenix.grammar import PlacementRule, SiteSpec, parse_grammar
from deepphoenix.mutator import (
    Annotation,
    Binding,
    Edit,
    Located,
    Locator,
    Program,
    Source,
    parse_program,
    register_placement,
)
from deepphoenix.proposers import Observation, Proposal, Proposer, ProposerContext
from deepphoenix.sandbox import JobResult, JobStatus, NamedJob, WorkerSettings


# -- an executor: subclass, override run_all (and lane), register ---------------------------
class CountingExecutor(Executor):
    """Runs jobs on local workers and counts them: a stand-in for a scheduler of one's own."""

    name = "counting"

    def __init__(self, settings: ExecutorSettings) -> None:
        super().__init__(settings)
        self.inner = LocalExecutor(settings)
        self.jobs = 0

    def run_all(self, jobs: Iterable[Submission], on_progress: Progress | None = None,
                ) -> Iterator[tuple[Any, JobResult]]:
        jobs = list(jobs)
        self.jobs += len(jobs)
        return self.inner.run_all(jobs, on_progress=on_progress)

    def close(self) -> None:
        self.inner.close()
        super().close()


def test_a_toy_executor_runs_batches_and_single_jobs() -> None:
    EXECUTORS.register("counting", CountingExecutor)
    settings = ExecutorSettings(workers=1, worker=WorkerSettings(preload=()))
    job = NamedJob("deepphoenix.evaluator._jobs:no_such_job")
    with get_executor("counting", settings) as executor:
        assert isinstance(executor, CountingExecutor)
        batch = dict(executor.run_all([("a", job, 30.0), ("b", job, 30.0)]))
        one = executor.submit(("c", job, 30.0)).result(timeout=120)  # the default submit
        assert executor.jobs == 3
    assert set(batch) == {"a", "b"}
    assert all(r.status is JobStatus.ERROR for r in [*batch.values(), one])


# -- a placement: a PlacementRule and a Locator, registered together -------------------------
class FirstImportLocator(Locator):
    """The module's first import statement, which must be one of the site's alternatives."""

    def locate(self, source: Source, spec: SiteSpec, annotation: Annotation | None,
               bindings: list[Binding]) -> Located | None:
        assert spec.structure is not None
        module_suite = next(s for s in source.collector.suites if s.scope is None)
        for statement in module_suite.body:
            if not (isinstance(statement, cst.SimpleStatementLine)
                    and isinstance(statement.body[0], cst.Import | cst.ImportFrom)):
                continue
            value = spec.structure.by_keys().get((source.key(statement),))
            line = source.first_line(statement)
            if value is None:
                raise SiteError(f"site {spec.name!r} at {source.where}:{line} imports "
                                "something that is none of its alternatives")
            start = source.line_start(line)
            end = source.after_line(source.positions[statement].end.line)
            return Located(spec.name, value, start, end, line, 1, "", "first import",
                           f"line {line}")
        return None

    def rule(self, spec: SiteSpec) -> str:
        return "the first import"


GRAMMAR = '''
name = "toy"
[sites.width]
select = "name:width"
kind = "int"
min = 1
max = 64
[sites.maths]
kind = "first-import"
[sites.maths.alternatives]
stdlib = "import math"
numeric = "import cmath as math"
'''


@pytest.fixture()
def placements() -> Iterator[None]:
    """The placement tables as they were before the test (registration is global)."""
    from deepphoenix.grammar import PLACEMENT_RULES
    from deepphoenix.mutator._structure import LOCATORS

    rules, locators = dict(PLACEMENT_RULES), dict(LOCATORS)
    yield
    PLACEMENT_RULES.clear()
    PLACEMENT_RULES.update(rules)
    LOCATORS.clear()
    LOCATORS.update(locators)


@pytest.mark.usefixtures("placements")
def test_a_toy_placement_is_declared_found_and_swapped() -> None:
    with pytest.raises(GrammarError, match="kind"):
        parse_grammar(GRAMMAR)  # not a kind of site until it is registered
    register_placement(PlacementRule("first-import", takes_after=False),
                       FirstImportLocator())
    grammar = parse_grammar(GRAMMAR)
    text = "import math\nimport os\n\nwidth = 8\nmodel = math.sqrt(width)\n"
    program = parse_program(text, grammar)
    assert program.values["maths"] == "stdlib"
    result = program.apply({"maths": "numeric"})
    assert result.variant is not None
    assert result.variant.source == ("import cmath as math\nimport os\n\nwidth = 8\n"
                                     "model = math.sqrt(width)\n")
    with pytest.raises(SiteError, match="none of its alternatives"):
        parse_program("import json\nwidth = 8\n", grammar)
    with pytest.raises(GrammarError, match="already a kind of site"):
        register_placement(PlacementRule("int"), FirstImportLocator())


# -- an objective: a function (program, ctx) -> score, named as FILE.py:NAME ---------------
def test_a_toy_objective_scores_candidates_in_workers() -> None:
    from pathlib import Path

    from deepphoenix.evaluator import EvalSettings, EvalStatus, Evaluator
    from deepphoenix.objectives import Direction, resolve_objective

    spec = resolve_objective(f"{Path(__file__).with_name('toy_objective.py')}:closeness")
    assert spec.direction is Direction.MAXIMIZE and not spec.builtin
    assert spec.unit == "steps"  # a rung of a user objective counts its reported steps
    settings = EvalSettings(objective=spec, timeout=60)
    with LocalExecutor(ExecutorSettings(workers=1, worker=WorkerSettings(preload=()))) as ex:
        results = {r.hash: r for r in Evaluator(ex, settings).evaluate(
            [("near", "width = 11\n"), ("far", "width = 40\n"), ("none", "depth = 3\n")])}
    assert results["near"].status is EvalStatus.SCORED
    assert results["near"].score == pytest.approx(-1.25)
    assert results["far"].score == pytest.approx(-28.25)
    assert results["near"].metrics["distance"] == 1
    assert results["none"].status is EvalStatus.FAILED and "width" in results["none"].reason


# -- a proposer: subclass Proposer, override propose (and observe), register ---------------
class NudgeProposer(Proposer):
    """Moves the site `width` one step towards the best width it has been told of, or up
    from the parent when it knows none: a stand-in for a proposer of one's own."""

    name = "nudge"

    def __init__(self, ctx: ProposerContext) -> None:
        self.sign = ctx.direction.sign
        self.best: tuple[float, int] | None = None
        self.told = 0

    def propose(self, parent: Program, n: int, seed: int,
                exclude: Collection[str] = ()) -> list[Proposal]:
        width = int(parent.values["width"])
        target = self.best[1] if self.best is not None else width + n + 1
        step = 1 if target >= width else -1
        edits = [Edit("width", width + step * (i + 1)) for i in range(n)]
        return [Proposal(parent.apply([edit]), f"width={edit.value}") for edit in edits]

    def observe(self, observations: Sequence[Observation]) -> None:
        for seen in observations:
            self.told += 1
            if seen.score is not None and (self.best is None
                                           or self.sign * seen.score < self.best[0]):
                self.best = (self.sign * seen.score, int(seen.values["width"]))


def test_a_toy_proposer_searches_through_the_run_loop(tmp_path: Path) -> None:
    from deepphoenix.proposers import get_proposer, register_proposer, unregister_proposer

    register_proposer("nudge", NudgeProposer)
    try:
        _search_with_nudge(tmp_path)
    finally:
        unregister_proposer("nudge")

    class NotAProposer:
        def __init__(self, ctx: ProposerContext) -> None:
            pass

    register_proposer("not-a-proposer", NotAProposer)  # type: ignore[arg-type]
    try:
        with pytest.raises(ConfigError, match=r"not a deepphoenix\.proposers\.Proposer"):
            get_proposer("not-a-proposer", ProposerContext(tmp_path, None, 0))  # type: ignore[arg-type]
    finally:
        unregister_proposer("not-a-proposer")


def _search_with_nudge(tmp_path: Path) -> None:
    from deepphoenix import search

    (tmp_path / "g.toml").write_text(
        'name = "w"\n[sites.width]\nselect = "name:width"\nkind = "int"\nmin = 1\n'
        'max = 40\n')
    objective = Path(__file__).with_name("toy_objective.py")
    study = search("width = 5\n", objective=f"{objective}:closeness",
                   grammar=str(tmp_path / "g.toml"), proposer="nudge", budget=6,
                   run_dir=tmp_path / "run", quiet=True, workers=1)
    widths = sorted(int(t.params["width"]) for t in study.trials)
    assert widths[0] == 5 and len(widths) >= 4  # the seed and its proposals
    assert all(w > 5 for w in widths[1:])  # nudged up from 5, towards 12
    assert study.best.params["width"] > 5 and study.best.score is not None


# -- a job: a function (args, ctx) written with deepphoenix.sandbox alone, run in a worker --
def test_a_toy_job_runs_in_a_worker_and_reports_an_evaluation() -> None:
    from deepphoenix.evaluator import EvalResult, EvalStatus
    from deepphoenix.sandbox import Worker

    kind = "tests.extending.toy_job:score_length"
    with Worker(WorkerSettings(preload=(), threads=1, extra_jobs=(kind,))) as worker:
        good = worker.run(NamedJob(kind, {"text": "four"}), timeout=60)
        empty = worker.run(NamedJob(kind, {"text": ""}), timeout=60)
    assert good.status is JobStatus.OK and empty.status is JobStatus.OK, (good, empty)
    scored = EvalResult.from_dict({**good.value, "hash": "h"})
    assert scored.status is EvalStatus.SCORED and scored.score == 4.0
    assert scored.metrics["device"] == "cpu"
    failed = EvalResult.from_dict({**empty.value, "hash": "h"})
    assert failed.status is EvalStatus.FAILED and failed.stage == "objective"
    assert "empty text" in failed.reason and "ValueError" in failed.traceback


def test_the_built_in_jobs_use_only_public_names_of_other_packages() -> None:
    """The worker-side façade is enough: the built-in job functions import nothing private
    from another package (a job of one's own needs no more than they do)."""
    import ast

    import deepphoenix

    root = Path(deepphoenix.__file__).parent
    jobs = ["evaluator/_jobs.py", "evaluator/_check_job.py", "proposers/_jobs.py",
            "quine/_jobs.py"]
    private = []
    for name in jobs:
        own = f"deepphoenix.{name.split('/')[0]}"
        for node in ast.walk(ast.parse((root / name).read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                if (parts[0] == "deepphoenix" and not node.module.startswith(own + ".")
                        and any(p.startswith("_") for p in parts)):
                    private.append(f"{name}: {node.module}")
    assert not private, private
