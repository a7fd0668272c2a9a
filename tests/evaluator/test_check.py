"""The check a candidate passes before it takes an evaluation slot, in a real sandboxed
worker: the model built on torch's meta device (no weights), counted as the evaluation
counts it, against --max-params and a user constraint; a user's mistake is a clear
verdict, never a crash."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from deepphoenix.errors import ConfigError
from deepphoenix.evaluator import (
    TORCH_PRELOAD,
    Checker,
    CheckSettings,
    Verdict,
    resolve_constraint,
)
from deepphoenix.executor import ExecutorSettings, LocalExecutor
from deepphoenix.objectives import ObjectiveSpec, resolve_objective
from deepphoenix.sandbox import WorkerSettings
from deepphoenix.seeds import seed_source

PROGRAM = """\
import torch
width = 3
model = torch.nn.Linear(width, width)
"""

RULES = '''\
def narrow(program, ctx):
    if program["width"] > 3:
        return f"width {program['width']} is over 3"
    return None


def tells(program, ctx):
    return f"{ctx.params} {ctx.values['width']} {ctx.device}"


def raises(program, ctx):
    return program["missing"]


def answers_a_number(program, ctx):
    return 3


def builds_big(program, ctx):
    import torch
    layer = torch.nn.Linear(100_000, 100_000)  # 40 GB of weights, were they allocated
    return f"{layer.weight.device.type} {sum(p.numel() for p in layer.parameters())}"
'''


@pytest.fixture(scope="module")
def executor() -> Iterator[LocalExecutor]:
    with LocalExecutor(ExecutorSettings(workers=1, worker=WorkerSettings(
            preload=TORCH_PRELOAD))) as found:
        yield found


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "rules.py"
    path.write_text(RULES)
    return path


def _user(**rules: object) -> CheckSettings:
    """Settings for a user objective (the program's `model` is what is counted)."""
    return CheckSettings(objective=ObjectiveSpec("score.py:f", function="f", text="x = 1"),
                         task="refinement", vocab_size=1024, **rules)  # type: ignore[arg-type]


def _built_here(source: str, tmp_path: Path, vocab: int, seq2seq: bool) -> int:
    """The parameter count of `source`'s model built for real, in this process."""
    from deepphoenix.training import count_parameters, exec_program, program_model, seq2seq_model

    before = Path.cwd()
    os.chdir(tmp_path)  # the paper's snippet reads Salesforce/codet5-small from here
    try:
        program = exec_program(source, tmp_path, 0, vocab)
        model = seq2seq_model(program, vocab) if seq2seq else program_model(program)
        return count_parameters(model)
    finally:
        os.chdir(before)


@pytest.mark.parametrize(("seed", "objective", "task"), [
    ("gpt", "val-loss", "code-lm"), ("tiny", "fewshot", "refinement")])
def test_the_count_on_the_meta_device_is_the_built_models(
        executor: LocalExecutor, tmp_path: Path, seed: str, objective: str, task: str) -> None:
    source = seed_source(seed)
    expected = _built_here(source, tmp_path, 400, task == "refinement")
    checker = Checker(executor, CheckSettings(resolve_objective(objective), task, 400,
                                              max_params=expected))
    (result,) = checker.check([("h", source, {})])
    assert (result.verdict, result.params, result.built) == (Verdict.PASS, expected, "meta")
    over = Checker(executor, CheckSettings(resolve_objective(objective), task, 400,
                                           max_params=expected - 1))
    (rejected,) = over.check([("h", source, {})])
    assert (rejected.verdict, rejected.rule) == (Verdict.REJECT, "max-params")
    assert rejected.reason == f"{expected:,} parameters, over the limit of {expected - 1:,}"
    assert rejected.blocks and not result.blocks


def test_a_constraint_accepts_rejects_or_fails_with_a_clear_reason(
        executor: LocalExecutor, rules: Path) -> None:
    wide = PROGRAM.replace("width = 3", "width = 5")
    checker = Checker(executor, _user(constraint=resolve_constraint(f"{rules}:narrow")))
    ok, rejected = checker.check([("a", PROGRAM, {"width": 3}), ("b", wide, {"width": 5})])
    assert (ok.verdict, ok.params) == (Verdict.PASS, 12)
    assert (rejected.verdict, rejected.rule, rejected.reason) == (
        Verdict.REJECT, "constraint", "width 5 is over 3")
    told = Checker(executor, _user(constraint=resolve_constraint(f"{rules}:tells")))
    (result,) = told.check([("a", PROGRAM, {"width": 3})])
    assert result.reason == "12 3 meta"  # ctx.params, ctx.values, ctx.device
    failing = Checker(executor, _user(constraint=resolve_constraint(f"{rules}:raises")))
    (error,) = failing.check([("a", PROGRAM, {"width": 3})])
    assert (error.verdict, error.rule) == (Verdict.ERROR, "constraint") and error.blocks
    assert error.reason == f"{rules}:raises raised KeyError: 'missing'"
    assert "Traceback" in error.traceback and "\n" not in error.reason
    odd = Checker(executor, _user(constraint=resolve_constraint(f"{rules}:answers_a_number")))
    (wrong,) = odd.check([("a", PROGRAM, {"width": 3})])
    assert wrong.verdict is Verdict.ERROR and "returned '3' (int)" in wrong.reason


def test_a_constraint_builds_its_own_models_without_weights(
        executor: LocalExecutor, rules: Path) -> None:
    checker = Checker(executor, _user(constraint=resolve_constraint(f"{rules}:builds_big")))
    (result,) = checker.check([("a", PROGRAM, {"width": 3})])
    assert result.reason == f"meta {100_000 * 100_000 + 100_000}"


def test_a_program_that_needs_real_tensors_is_counted_on_the_cpu(
        executor: LocalExecutor) -> None:
    reads = PROGRAM + "scale = float(model.weight.abs().sum())\n"  # no value on meta
    (result,) = Checker(executor, _user(max_params=100)).check([("a", reads, {})])
    assert (result.verdict, result.params, result.built) == (Verdict.PASS, 12, "cpu")


def test_a_program_that_does_not_build_is_left_to_its_evaluation(
        executor: LocalExecutor) -> None:
    broken = PROGRAM + "raise RuntimeError('no model today')\n"
    (result,) = Checker(executor, _user(max_params=100)).check([("a", broken, {})])
    assert (result.verdict, result.rule) == (Verdict.UNKNOWN, "build")
    assert not result.blocks and "no model today" in result.reason


def test_preflight_loads_the_objective(executor: LocalExecutor, tmp_path: Path) -> None:
    objective = tmp_path / "score.py"
    objective.write_text("import no_such_module_here\n\ndef f(program, ctx):\n    return 1.0\n")
    settings = CheckSettings(resolve_objective(f"{objective}:f"), "refinement", 1024)
    result = Checker(executor, settings).preflight("h", PROGRAM, {}, count=True)
    assert (result.verdict, result.rule) == (Verdict.ERROR, "objective")
    assert "ModuleNotFoundError" in result.reason and "no_such_module_here" in result.reason


def test_a_constraint_is_checked_before_it_is_stored(tmp_path: Path) -> None:
    rules = tmp_path / "rules.py"
    rules.write_text("def narrow(program):\n    return None\n")
    with pytest.raises(ConfigError, match=r"narrow\(program\) has the wrong signature; a "
                                          r"constraint is called as narrow\(program, ctx\)"):
        resolve_constraint(f"{rules}:narrow")
    with pytest.raises(ConfigError, match="has no function 'wide'"):
        resolve_constraint(f"{rules}:wide")
    with pytest.raises(ConfigError, match="wrong signature; a constraint"):
        resolve_constraint(lambda program: None)
    spec = resolve_constraint(lambda program, ctx: None)
    assert spec.pickled and spec.name.endswith("<lambda>")


def test_a_candidate_of_several_files_is_checked_as_it_is_evaluated(
        executor: LocalExecutor) -> None:
    """A bundle's first file is the program (as its evaluation executes it), not the text
    of every file run together."""
    from deepphoenix.mutator import bundle_text

    source = bundle_text([("model.py", PROGRAM),
                          ("extra.py", "import torch\nmodel = torch.nn.Linear(100, 100)\n")])
    (result,) = Checker(executor, _user(max_params=100)).check([("h", source, {})])
    assert (result.verdict, result.params) == (Verdict.PASS, 12)


def test_a_command_objective_is_not_loaded_but_its_program_is_checked(
        executor: LocalExecutor) -> None:
    """A command objective has no file to load in a worker; its run's rules still check
    the program the candidate's first file defines."""
    command = ObjectiveSpec("cmd:python train.py", metric="loss ([0-9.]+)")
    checker = Checker(executor, CheckSettings(objective=command, max_params=100))
    seed = checker.preflight("h", PROGRAM, {}, count=True)
    assert (seed.verdict, seed.params) == (Verdict.PASS, 12)
    (wide,) = Checker(executor, CheckSettings(objective=command, max_params=10)).check(
        [("w", PROGRAM, {})])
    assert (wide.verdict, wide.rule) == (Verdict.REJECT, "max-params")
