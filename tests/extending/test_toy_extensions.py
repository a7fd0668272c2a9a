"""docs/architecture.md's "How to add ..." recipes, followed from outside the package: a toy
executor and a toy kind of structural site, each written here against the public base
classes and registered, then used the way deepphoenix uses its own."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import libcst as cst
import pytest

from deepphoenix.errors import GrammarError, SiteError
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
    Located,
    Locator,
    Source,
    parse_program,
    register_placement,
)
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
