"""`ExecutorOptions`: the executor package owns and validates a run's executor options (its
name, a cluster's address, GPU reservations); the run config holds them as flat fields
and hands them over (issue 33, item 2). None of these needs Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deepphoenix.engine import PLACEMENT, RunConfig, preset
from deepphoenix.errors import ConfigError, DeepPhoenixError
from deepphoenix.executor import OPTION_FIELDS, ExecutorOptions
from deepphoenix.executor import _options as options_module
from deepphoenix.sandbox import WorkerSettings


@pytest.fixture
def ray_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(options_module, "_installed", lambda _name: True)  # Ray or not


@pytest.mark.parametrize("change", [
    {"ray_address": "10.0.0.1:6379"},
    {"gpus_per_eval": 0.25, "train_on": "gpu"},
    {"executor": "ray", "gpus_per_eval": 1.5},
    {"executor": "ray", "gpus_per_eval": float("nan")},
    {"executor": "ray", "train_on": "tpu"},
    {"executor": "rayy"},
])
def test_a_bad_option_gives_the_executors_one_line_error_through_the_config(
        change: dict[str, Any], ray_installed: None) -> None:
    with pytest.raises(DeepPhoenixError) as own:
        ExecutorOptions(**change).validate()
    with pytest.raises(DeepPhoenixError) as through_config:
        preset("smoke").with_overrides(**change)
    assert str(through_config.value) == str(own.value)
    assert type(through_config.value) is type(own.value)
    assert "\n" not in str(own.value)


def test_the_config_asks_the_executor_to_validate_its_options(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The config does not restate the executor's rules: it asks the executor's options."""
    seen: list[ExecutorOptions] = []

    def refuse(self: ExecutorOptions) -> None:
        seen.append(self)
        raise ConfigError(f"refused by the executor: {self.executor}")

    monkeypatch.setattr(ExecutorOptions, "validate", refuse)
    with pytest.raises(ConfigError, match="refused by the executor: local"):
        preset("smoke").with_overrides(workers=3)
    assert seen == [ExecutorOptions()]


def test_options_and_config_fields_are_one_set(ray_installed: None) -> None:
    config = preset("smoke").with_overrides(executor="ray", ray_address="head:6379",
                                            gpus_per_eval=0.5, train_on="gpu")
    options = config.executor_options()
    assert options == ExecutorOptions("ray", "head:6379", 0.5, "gpu")
    assert set(options.to_dict()) == set(OPTION_FIELDS) <= set(PLACEMENT)
    assert set(OPTION_FIELDS) <= {f for f in RunConfig.__dataclass_fields__}
    # Back on this machine: every cluster option goes, the address (None) included.
    back = config.with_executor_options(ExecutorOptions())
    assert back.executor_options() == ExecutorOptions()
    assert back.to_dict() == {**config.to_dict(), **ExecutorOptions().to_dict()}


def test_the_options_place_the_workers_and_the_lane(tmp_path: Path) -> None:
    worker, lane = WorkerSettings(threads=2), WorkerSettings(threads=4)
    on_cluster = ExecutorOptions("ray", "head:6379", 0.25, "gpu").settings(
        3, worker, lane, tmp_path)
    assert (on_cluster.workers, on_cluster.worker, on_cluster.lane, on_cluster.log_dir) == (
        3, worker, lane, tmp_path)
    assert (on_cluster.address, on_cluster.gpus_per_worker, on_cluster.lane_gpus) == (
        "head:6379", 0.25, 1.0)
    here = ExecutorOptions().settings(1, worker, lane)
    assert (here.address, here.gpus_per_worker, here.lane_gpus) == (None, 0.0, 0.0)
