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


def tiny(name: str, text: str | None = None) -> str:
    text = seed_source(name) if text is None else text
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
    except TrivialQuine as trivial:  # an untrained LSTM's print is nearly constant: flagged,
        result = trivial.metrics  # and recorded with how it trained all the same
    assert result["stopped"] == "time budget" and result["train_steps"] == 0
    assert ctx.reports == []


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
    # The write-up's recurrent quine: a print near the weights' mean, spread 5% of theirs.
    with pytest.raises(TrivialQuine, match=r"nearly constant \(their spread is 5% of"):
        replication_scores((actual * 0.05, actual))
    half = replication_scores((actual * 0.5, actual))
    assert half["relative_error"] == pytest.approx(0.5, rel=0.01)


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


def _variant(name: str, edits: dict[str, object]) -> str:
    """The seed with `edits` at its sites (as a search makes them), on the tiny budget."""
    mutation = parse_program(seed_source(name), load_grammar("quine")).apply(edits)
    assert mutation.ok and mutation.variant is not None, mutation.reason
    return tiny(name, mutation.variant.source)


def test_regeneration_alone_is_the_fixed_point_iteration(tmp_path: Path) -> None:
    # gradient_every = 0: no optimizer step reaches the weights (the write-up's code in
    # effect), each step is W <- W + relax * (f(W) - W); relax 1 is W <- f(W).
    for relax in (1.0, 0.2):
        text = _variant("quine-coords", {"gradient_every": 0, "regenerate_every": 1,
                                         "relax": relax, "lr": 0.1})
        program = exec_program(text.replace("keep_best = True", "keep_best = False"),
                               tmp_path, seed=0)
        model = program["model"]
        weight = model.weight.detach().clone()
        with torch.no_grad():
            for _ in range(3):  # TINY's steps
                weight += relax * (model(model.queries).reshape(weight.shape) - weight)
                model.weight.copy_(weight)
        again = exec_program(text.replace("keep_best = True", "keep_best = False"),
                             tmp_path, seed=0)
        assert again["train"](again["model"]) == {"steps": 3}
        assert torch.allclose(again["model"].weight, weight, atol=1e-6), relax


def test_the_best_step_is_kept_and_recorded(tmp_path: Path) -> None:
    # The write-up's procedure, at 4 x 4 for 40 iterations: the kept weights are the ones
    # that replicated best, which need not be the last; the objective records the step.
    text = re.sub(r"^steps = .*$", "steps = 40", _variant(
        "quine-coords", {"gradient_every": 0, "regenerate_every": 2}), flags=re.M)
    errors: list[float] = []
    last = exec_program(text.replace("keep_best = True", "keep_best = False"), tmp_path, 0)
    trained = last["train"](last["model"], None)
    assert trained == {"steps": 40}
    predicted, actual = last["replicate"](last["model"])
    errors.append(float((predicted - actual).pow(2).mean()))
    program = exec_program(text, tmp_path, seed=0)
    ctx = ObjectiveContext("cpu", 0, tmp_path)
    try:
        result = self_replication(program, ctx)
    except TrivialQuine as trivial:
        result = trivial.metrics
    assert result["train_steps"] == 40 and 0 <= result["best_step"] < 40
    assert result["rmse"] ** 2 <= errors[0] + 1e-12
    reported = dict(ctx.reports)  # every 100 steps: step 0's error
    assert result["rmse"] ** 2 <= reported[0] + 1e-12


def test_what_train_returns_is_recorded_and_cannot_overwrite_the_scores(
        tmp_path: Path) -> None:
    text = tiny("quine-coords").replace(
        '        return {"steps": done, "best_step": kept}',
        '        return {"steps": done, "best_step": kept, "score": -1.0, "rmse": 0.0,'
        ' "note": "text", "nan": float("nan"), "flag": True}')
    program = exec_program(text, tmp_path, seed=0)
    result = self_replication(program, ObjectiveContext("cpu", 0, tmp_path))
    assert result["train_steps"] == 3 and "best_step" in result
    assert result["score"] > 0 and result["rmse"] > 0  # the objective's, not the program's
    assert not {"note", "nan", "flag", "steps"} & result.keys()


def test_a_trivial_quine_keeps_how_it_trained(tmp_path: Path) -> None:
    # Regeneration without normalisation: the zero quine, recorded with its steps.
    text = _variant("quine-coords", {"norm": "none", "gradient_every": 0,
                                     "regenerate_every": 1})
    text = re.sub(r"^steps = .*$", "steps = 500", text, flags=re.M)
    program = exec_program(text, tmp_path, seed=0)
    with pytest.raises(TrivialQuine) as caught:
        self_replication(program, ObjectiveContext("cpu", 0, tmp_path))
    assert caught.value.metrics["train_steps"] == 500
    assert "best_step" in caught.value.metrics and "relative_error" in caught.value.metrics


def test_the_quine_grammar_fixes_the_size_and_quine_sized_searches_it() -> None:
    fixed, sized = load_grammar("quine"), load_grammar("quine-sized")
    program = parse_program(seed_source("quine-coords"), fixed)
    assert "size" not in {spec.name for spec in program.proposable}
    assert {"gradient_every", "regenerate_every", "relax"} <= {
        spec.name for spec in program.proposable}
    assert "size" in {spec.name for spec in parse_program(seed_source("quine-coords"),
                                                          sized).proposable}
    # Any size the user writes is read (fixed sites have no list of values) ...
    big = parse_program(seed_source("quine-coords").replace("size = 16", "size = 200"),
                        fixed)
    assert big.values["size"] == 200
    # ... and the two grammars are one but for `size`.
    assert [s for s in fixed.sites if s.name != "size"] == [
        s for s in sized.sites if s.name != "size"]
    assert fixed.invariants == sized.invariants
    broken = program.apply({"gradient_every": 0, "regenerate_every": 0})
    assert broken.outcome.value == "invariant" and "gradient_every" in broken.reason


def test_the_quine_cpu_search_keeps_the_size_the_user_fixed() -> None:
    from deepphoenix.engine import preset
    from deepphoenix.proposers import ProposerContext, TPEProposer

    config = preset("quine-cpu")
    text = seed_source(config.seed_source).replace("size = 16", "size = 64")
    sizes = {}
    for grammar in (config.grammar, "quine-sized"):
        program = parse_program(text, load_grammar(grammar))
        proposer = TPEProposer(ProposerContext(run_dir=Path("."), executor=None,  # type: ignore[arg-type]
                                               seed=0, direction="minimize"))
        variants = [p.mutation.variant for p in proposer.propose(program, 16, seed=1)
                    if p.mutation.ok and p.mutation.variant is not None]
        assert variants
        sizes[grammar] = {v.value("size") for v in variants}
    assert sizes[config.grammar] == {64}
    assert len(sizes["quine-sized"]) > 1  # the explicit error-against-size view
