"""The quine seeds: each runs on its own (``python file.py``) and under the
self-replication objective, on a tiny budget; the objective's scores, trivial quines and
bad programs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deepphoenix.grammar import load_grammar
from deepphoenix.mutator import parse_program
from deepphoenix.objectives import resolve_objective, uses_task
from deepphoenix.objectives._replication import TrivialQuine, replication_scores, self_replication
from deepphoenix.objectives._user import ObjectiveContext, ObjectiveFailure
from deepphoenix.seeds import seed_names, seed_source
from deepphoenix.training import exec_program

QUINES = ("quine-coords", "quine-onehot", "quine-rnn", "quine-source")
# The default run keeps one file run and the fast objective runs; printing 2.5 kB one
# character at a time (quine-source's replicate) takes a minute on a loaded 2-core machine.
SLOW = pytest.mark.slow
FILE_RUNS = [QUINES[0], *(pytest.param(n, marks=SLOW) for n in QUINES[1:])]
OBJECTIVE_RUNS = [*QUINES[:3], pytest.param(QUINES[3], marks=SLOW)]
# The smallest budget: a few steps on the smallest model each seed allows.
TINY = {"steps": 3, "size": 4, "width": 4, "layers": 1}


def tiny(name: str) -> str:
    text = seed_source(name)
    for key, value in TINY.items():
        text = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
    return text


def test_the_quines_are_seeds_the_quine_grammar_reads() -> None:
    grammar = load_grammar("quine")
    for name in QUINES:
        assert name in seed_names()
        program = parse_program(seed_source(name), grammar)
        assert {"optimizer", "lr", "steps"} <= set(program.values), name
    coords = parse_program(seed_source("quine-coords"), grammar)
    onehot = parse_program(seed_source("quine-onehot"), grammar)
    assert coords.values["query"] == "coords" and onehot.values["query"] == "onehot"
    # The two are one program at other values of its sites (their docstrings aside).
    mutation = coords.apply({"query": "onehot", "norm": "none", "regenerate_every": 0})
    assert mutation.ok and mutation.variant is not None
    body = mutation.variant.source.split('"""', 2)[2]
    assert body == seed_source("quine-onehot").split('"""', 2)[2]


@pytest.mark.parametrize("name", FILE_RUNS)
def test_each_quine_runs_as_a_python_file(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.py"
    path.write_text(tiny(name))
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=240, cwd=tmp_path,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    if name == "quine-source":
        assert done.stdout.startswith("# 3 steps")  # 3 steps cannot learn 2 kB of text
    else:
        assert re.search(r"rmse [0-9.e+-]+  relative [0-9.e+-]+", done.stdout), done.stdout


@pytest.mark.parametrize("name", OBJECTIVE_RUNS)
def test_each_quine_is_scored_by_self_replication(name: str, tmp_path: Path) -> None:
    program = exec_program(tiny(name), tmp_path, seed=0)
    ctx = ObjectiveContext("cpu", 0, tmp_path)
    try:
        result = self_replication(program, ctx)
    except TrivialQuine as trivial:  # 3 steps can collapse a small quine: still measured
        result = {"score": trivial.metrics["score"], **trivial.metrics}
    assert result["score"] >= 0
    assert ctx.reports and ctx.reports[0][0] == 0  # train() reported its first step
    if name == "quine-source":
        # its text and the end marker
        assert 0 <= result["char_accuracy"] < 1 and result["length"] == len(tiny(name)) + 1
        assert result["train_steps"] == 3
    else:
        assert result["rmse"] > 0 and result["relative_error"] == pytest.approx(
            result["rmse"] / result["actual_std"])


def test_a_spent_time_budget_stops_training(tmp_path: Path) -> None:
    text = tiny("quine-rnn").replace("steps = 3", "steps = 100000")
    program = exec_program(text, tmp_path, seed=0)
    ctx = ObjectiveContext("cpu", 0, tmp_path, deadline=0.0)  # spent before it starts
    try:
        result = self_replication(program, ctx)
    except TrivialQuine as trivial:
        pytest.fail(f"an untrained quine is not trivial: {trivial}")
    assert result["stopped"] == "time budget" and ctx.reports == []


def test_weight_scores_and_trivial_quines() -> None:
    actual = torch.linspace(-1, 1, 64)
    scores = replication_scores((actual + 0.01, actual))
    assert scores["rmse"] == pytest.approx(0.01, rel=1e-6)
    assert scores["score"] == pytest.approx(0.01 / actual.double().std().item(), rel=1e-6)
    with pytest.raises(TrivialQuine, match="the zero quine"):
        replication_scores((torch.zeros(8), torch.full((8,), 1e-22)))
    with pytest.raises(TrivialQuine, match=r"collapsed towards zero \(RMS 0.5"):
        replication_scores((actual * 1e-3, actual * 1e-3), before_rms=0.5)
    collapsed = torch.cat([torch.full((60,), 0.3), torch.tensor([-1.0, 2.0, 0.5, 1.5])])
    with pytest.raises(TrivialQuine, match=r"94% of the weights .* constant collapse"):
        replication_scores((collapsed, collapsed))
    with pytest.raises(TrivialQuine, match="predicted weights are constant") as caught:
        replication_scores((torch.zeros(64), actual))
    assert caught.value.metrics["relative_error"] > 0.9  # measured all the same


def test_source_scores() -> None:
    actual = torch.tensor([ord(c) for c in "print(1)\n"])
    printed = actual.clone()
    assert replication_scores((printed, actual))["score"] == 0.0
    printed[5] = ord("2")
    scores = replication_scores((printed, actual))
    assert scores["exact_prefix"] == 5 and scores["char_accuracy"] == pytest.approx(8 / 9)
    assert scores["exact"] == 0.0


def test_bad_quine_programs_are_named_failures(tmp_path: Path) -> None:
    no_replicate = tiny("quine-coords").replace("def replicate(model):", "def copy(model):")
    program = exec_program(no_replicate, tmp_path, seed=0)
    with pytest.raises(ObjectiveFailure, match="defines no replicate"):
        self_replication(program, ObjectiveContext("cpu", 0, tmp_path))
    with pytest.raises(ObjectiveFailure, match=r"different shapes: predicted \(3,\), "
                                                r"actual \(4,\)"):
        replication_scores((torch.zeros(3), torch.ones(4)))
    with pytest.raises(ObjectiveFailure, match="returned a tuple of 1"):
        replication_scores((torch.zeros(3),))


def test_self_replication_is_a_data_free_builtin() -> None:
    spec = resolve_objective("self-replication")
    assert spec.builtin and not spec.uses_task and not uses_task("self-replication")
    assert uses_task("fewshot") and uses_task("val-loss") and not uses_task("score.py:f")
