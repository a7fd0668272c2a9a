"""One settings builder a concern (`engine/_settings`), used by a run and by ``deepphoenix
evaluate`` alike, and one memory policy (issue 33, item 2)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from deepphoenix.cli import _run as cli_run
from deepphoenix.cli import cli
from deepphoenix.engine import (
    Run,
    executor_settings,
    prepare_run_data,
    preset,
    sample_settings,
    train_settings,
)
from deepphoenix.executor import ExecutorSettings
from deepphoenix.executor import _options as options_module
from deepphoenix.objectives import resolve_objective
from deepphoenix.proposers import SampleSettings, TrainSettings
from deepphoenix.sandbox import WorkerSettings, default_memory_limit
from deepphoenix.sandbox import _settings as sandbox_settings
from deepphoenix.seeds import seed_source


class _Stop(Exception):
    """Raised where the command would start evaluating: what it built is enough."""


def _evaluate_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                     args: list[str]) -> dict[str, Any]:
    """The executor and evaluation settings `deepphoenix evaluate ARGS` builds."""
    built: dict[str, Any] = {}

    class Executor:
        def __init__(self, settings: ExecutorSettings) -> None:
            built["executor"] = settings

        def __enter__(self) -> Executor:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    def evaluator(executor: Executor, settings: Any) -> None:
        built["evaluation"] = settings
        raise _Stop

    monkeypatch.setattr(cli_run, "LocalExecutor", Executor)
    monkeypatch.setattr(cli_run, "Evaluator", evaluator)
    with pytest.raises(_Stop):
        CliRunner().invoke(cli, ["evaluate", *args], catch_exceptions=False)
    return built


def test_evaluate_builds_the_settings_a_run_builds_from_the_same_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.py").write_text(seed_source("tiny"))
    (tmp_path / "score.py").write_text("def evaluate(program, ctx):\n    return 1.0\n")
    given = {"objective": "score.py:evaluate", "fewshot_samples": 48, "seed": 7,
             "timeout": 90.0, "disk_limit_gb": 2.0}
    built = _evaluate_builds(tmp_path, monkeypatch, [
        "t.py", "--preset", "smoke", "--objective", "score.py:evaluate", "--samples", "48",
        "--seed", "7", "--timeout", "90", "--disk-limit", "2"])
    config = preset("smoke").with_overrides(seed_source=str(tmp_path / "t.py"), **given)
    run = Run(tmp_path / "run", config)
    try:
        data = prepare_run_data(tmp_path / "run" / "data", config, None, refinement=False)
        in_run = run._eval_settings(data)
        worker = run._executor_settings().worker
    finally:
        run.close()
    # The same evaluation (seed, budget, batch size, learning rate, timeout, limits)...
    assert replace(built["evaluation"], objective=None) == replace(in_run, objective=None)
    assert built["evaluation"].objective.name == in_run.objective.name
    # ... in a worker started the same way (what it may read aside).
    assert built["executor"].workers == 1
    assert replace(built["executor"].worker, hidden=(), readable=()) == replace(
        worker, hidden=(), readable=())


def test_the_run_executors_settings_come_from_its_options_and_one_worker_rule(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(options_module, "_installed", lambda _name: True)  # Ray or not
    config = preset("smoke").with_overrides(executor="ray", ray_address="head:6379",
                                            gpus_per_eval=0.5, train_on="gpu", workers=2,
                                            threads=3, disk_limit_gb=1.0)
    spec = resolve_objective("fewshot")
    built = executor_settings(config, spec, seed_source("tiny"), tmp_path)
    assert (built.address, built.gpus_per_worker, built.lane_gpus) == ("head:6379", 0.5, 1.0)
    assert (built.workers, built.worker.threads, built.lane.threads) == (2, 3, 6)
    assert built.worker.disk_limit == built.lane.disk_limit == 2**30
    assert built.worker.memory_limit == config.memory_limit_bytes()
    assert built.lane.memory_limit is None
    assert str(tmp_path) in built.worker.hidden and str(tmp_path) in built.lane.hidden
    assert built.lane.writable == (str(tmp_path / "episodes"),)
    assert built.log_dir == tmp_path / "logs"


def test_the_proposers_settings_are_the_configs() -> None:
    config = preset("smoke").with_overrides(
        temperature=0.7, top_k=5, top_p=0.9, constrained=False, draw_rounds=2,
        train_epochs=4, train_batch_size=8, train_lr=3e-4, train_samples=64,
        train_max_seconds=30.0)
    assert sample_settings(config) == SampleSettings(temperature=0.7, top_k=5, top_p=0.9,
                                                     constrained=False, rounds=2)
    assert train_settings(config) == TrainSettings(epochs=4, batch_size=8, lr=3e-4,
                                                   samples=64, max_seconds=30.0)


def test_one_memory_policy_for_the_run_config_and_the_sandbox(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The share of RAM a worker gets by default is said once, in the sandbox: a run's
    config and a worker's own default follow the same number."""
    if default_memory_limit(1) is None:
        pytest.skip("physical memory is unknown here")
    before = preset("smoke").with_overrides(workers=4).memory_limit_bytes()
    monkeypatch.setattr(sandbox_settings, "_RAM_SHARE", 0.4)
    config = preset("smoke").with_overrides(workers=4)
    limit = config.memory_limit_bytes()
    assert limit is not None and before is not None
    assert limit == default_memory_limit(4) and abs(2 * limit - before) <= 2  # 0.4 of 0.8
    # A worker told nothing (the sandbox's default) gets what the config asks for it.
    scratch = sandbox_settings.scratch_size
    assert scratch(WorkerSettings(), 4) == scratch(WorkerSettings(memory_limit=limit), 4)
