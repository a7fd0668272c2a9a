"""The Python API: `deepphoenix.search` with a callable objective, the `Study` it returns,
`deepphoenix.load`, and the one-line errors of bad arguments."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

import deepphoenix
from deepphoenix.engine import Event, preset
from deepphoenix.errors import ConfigError, RunDirError, UnknownNameError
from deepphoenix.objectives import callable_objective
from deepphoenix.study import budget_shape, plan_search

OFFSET = 3.0  # module globals the objective reads: they travel with the pickled function
PIDS: str = ""  # where the objective writes its process id (set by the test)


def small_model_objective(program, ctx):  # type: ignore[no-untyped-def]
    """Millions of parameters plus OFFSET; notes the process it runs in."""
    model = program["model"]
    with Path(PIDS).open("a") as out:
        out.write(f"{os.getpid()}\n")
    return {"score": sum(p.numel() for p in model.parameters()) / 1e6 + OFFSET, "extra": 1.5}


@pytest.fixture
def plain_workers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Workers without mount and PID namespaces: the objective below notes its process in
    a file of the host, which a confined worker can neither write nor name
    (tests/sandbox/test_namespaces.py)."""
    from deepphoenix.sandbox import confinement

    monkeypatch.setenv("DEEPPHOENIX_NO_NAMESPACES", "1")
    confinement.cache_clear()
    yield
    confinement.cache_clear()


@pytest.mark.usefixtures("plain_workers")
def test_search_with_a_callable_returns_a_study(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    pids = tmp_path / "pids.txt"
    monkeypatch.setattr(sys.modules[__name__], "PIDS", str(pids))
    study = deepphoenix.search("tiny", objective=small_model_objective, proposer="random",
                               budget=3, run_dir=tmp_path / "run", quiet=True,
                               preset="smoke", workers=1)
    assert study.status == "finished"
    assert study.objective.endswith(":small_model_objective")
    # Scored in sandboxed workers, never in this process.
    worker_pids = {int(p) for p in pids.read_text().split()}
    assert worker_pids and os.getpid() not in worker_pids
    trials = study.trials
    assert len(trials) == study.evaluations == 4  # the seed and a budget of 3
    assert trials[0].parent is None and all(t.parent == trials[0].hash for t in trials[1:])
    best = study.best
    assert best.score == min(t.score for t in trials if t.score is not None)
    assert best.score is not None and best.score > OFFSET
    if best.hash != trials[0].hash:
        assert best.edits and "+++" in best.diff
        assert all(f"{site} = " in best.source or site in best.source for site in best.edits)
    frame = study.trials_dataframe()
    assert list(frame["status"]) == [t.status for t in trials]
    assert frame.loc[0, "params_d_model"] == trials[0].params["d_model"]
    assert {"score", "parent", "rung", "seconds", "episode", "batch"} <= set(frame.columns)
    assert isinstance(study.lineage, nx.DiGraph)
    assert study.lineage.number_of_nodes() >= 4
    bare = study.graph(include_source=False)
    assert bare.number_of_nodes() == study.lineage.number_of_nodes()
    assert all("source" not in data for _, data in bare.nodes(data=True))
    assert study.verify() == (4, [])  # every stored source re-renders from the seed
    pictures = study.plots(tmp_path / "plots")
    assert [p.name for p in pictures] == ["lineage.png"]  # no proposer trained: no Figure 1
    assert pictures[0].stat().st_size > 0
    assert study.pareto()[0].hash in {t.hash for t in trials}
    report = study.report(tmp_path / "report.html")
    assert "<html" in report.read_text(encoding="utf-8")[:500].lower()
    exported = study.to_optuna(tmp_path / "study.db")
    assert len(exported.trials) == 4
    # The same search again: opened, not run again; a different one: refused.
    ran = len(pids.read_text().split())  # the 4 evaluations and the best's re-score
    assert ran == 5
    again = deepphoenix.search("tiny", objective=small_model_objective, proposer="random",
                               budget=3, run_dir=tmp_path / "run", quiet=True,
                               preset="smoke", workers=1)
    assert again.evaluations == 4 and again.best == best
    assert len(pids.read_text().split()) == ran  # no evaluation ran again
    with pytest.raises(RunDirError, match=r"holds a different search .*proposer"):
        deepphoenix.search("tiny", objective=small_model_objective, proposer="tpe",
                           budget=3, run_dir=tmp_path / "run", quiet=True, preset="smoke")
    loaded = deepphoenix.load(tmp_path / "run")
    assert loaded.best == best and loaded.resume(quiet=True).evaluations == 4


def test_budget_is_episodes_times_batches_times_candidates() -> None:
    smoke = preset("smoke")  # E=2, B=2, C=3
    for budget in range(1, 40):
        shape = budget_shape(budget, smoke, {})
        total = shape["episodes"] * shape["batches"] * shape["candidates"]
        assert 1 <= total <= budget
        assert total > budget - shape["candidates"] * shape["episodes"]
    assert budget_shape(12, smoke, {}) == {"episodes": 2, "batches": 2, "candidates": 3}
    assert budget_shape(8, smoke, {"candidates": 4}) == {"episodes": 2, "batches": 1,
                                                         "candidates": 4}


@pytest.mark.parametrize("budget", [0, -3, 2.5, True, "10"])
def test_a_bad_budget_is_one_clear_error(budget: object) -> None:
    with pytest.raises(ConfigError, match=r"budget=.*type="):
        plan_search("tiny", budget=budget, preset_name="smoke")  # type: ignore[arg-type]


def test_unknown_names_and_bad_objectives_are_deepphoenix_errors(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match=r"Unknown proposer 'rando'. Did you mean"):
        plan_search("tiny", proposer="rando")
    with pytest.raises(UnknownNameError, match="Unknown strategy"):
        plan_search("tiny", strategy="gredy")
    with pytest.raises(ConfigError, match=r"Unknown setting 'episode'. Did you mean"):
        plan_search("tiny", episode=2)
    with pytest.raises(ConfigError, match=r"objective=42 .type=int."):
        plan_search("tiny", objective=42)
    with pytest.raises(ConfigError, match="wrong signature"):
        plan_search("tiny", objective=lambda program: 1.0)
    with pytest.raises(ConfigError, match="neither a built-in seed"):
        plan_search("tinny")
    for name, kwargs in (("objective", {"objective": "fewshott"}),
                         ("grammar", {"grammar": "t6"})):
        with pytest.raises(UnknownNameError, match=f"Unknown {name}"):
            deepphoenix.search("tiny", run_dir=tmp_path / name, quiet=True, **kwargs)
        assert not (tmp_path / name).exists()  # nothing written


def test_what_cannot_be_shipped_is_named() -> None:
    lock = threading.Lock()

    def holds_a_lock(program, ctx):  # type: ignore[no-untyped-def]
        with lock:
            return 1.0

    with pytest.raises(ConfigError, match="cannot be shipped to the sandboxed worker"):
        callable_objective(holds_a_lock)
    spec = callable_objective(small_model_objective, "maximize")
    assert spec.pickled and spec.direction.value == "maximize" and not spec.builtin


def test_a_source_string_is_stored_in_the_run() -> None:
    plan = plan_search("x = 1\ny = 2\n", grammar="infer", objective=small_model_objective,
                       preset_name="smoke")
    assert plan.inputs["seed_text"] == "x = 1\ny = 2\n"
    assert plan.config.seed_source == "<string>"


def test_import_deepphoenix_stays_light() -> None:
    code = ("import sys, deepphoenix; deepphoenix.search; "
            "print(sorted(m for m in ('torch', 'pandas', 'click') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_an_interrupted_search_continues_where_it_stopped(tmp_path: Path) -> None:
    def interrupt(event: Event) -> None:
        if event.kind == "batch_done":
            raise KeyboardInterrupt

    def params(program, ctx):  # type: ignore[no-untyped-def]
        return sum(p.numel() for p in program["model"].parameters()) / 1e6

    arguments: dict[str, Any] = dict(objective=params, proposer="random", budget=6,
                                     run_dir=tmp_path / "run", quiet=True, preset="smoke",
                                     workers=1)
    with pytest.raises(KeyboardInterrupt) as caught:
        deepphoenix.search("tiny", on_event=interrupt, **arguments)
    assert "resume()" in "".join(getattr(caught.value, "__notes__", []))
    stopped = deepphoenix.load(tmp_path / "run")
    assert stopped.status == "interrupted" and stopped.evaluations == 4  # seed + 1 batch
    # `resume` in two steps (the CLI's --resume): wired and locked, placement applied.
    with pytest.raises(ConfigError, match="drop episodes"):
        stopped.continuation(episodes=9)
    wired = stopped.continuation(threads=1)
    try:
        assert wired.config.threads == 1 and stopped.status == "running"  # locked
    finally:
        wired.close()
    before = [t.hash for t in stopped.trials]
    # The same call again continues the run (same search, same run_dir).
    study = deepphoenix.search("tiny", **arguments)
    assert study.status == "finished" and study.evaluations == 7
    assert [t.hash for t in study.trials[:4]] == before
