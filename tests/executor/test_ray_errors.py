"""The ray executor's one-line errors and the run config's cluster options: none of these
needs a running Ray instance (and the first needs no Ray at all)."""

from __future__ import annotations

import json
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest

from deepphoenix.engine import PLACEMENT, Run, RunConfig, preset
from deepphoenix.errors import ConfigError
from deepphoenix.executor import ExecutorError, ExecutorSettings, executor_names, get_executor
from deepphoenix.executor import _options as options_module

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_ray_is_a_built_in_name() -> None:
    assert {"local", "ray"} <= set(executor_names())


def test_choosing_ray_without_ray_installed_says_how_to_install_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(ExecutorError) as caught:
        get_executor("ray", ExecutorSettings())
    assert "pip install 'deepphoenix[ray]'" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_run_config_asking_for_ray_without_ray_is_refused_before_anything_runs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"pip install 'deepphoenix\[ray\]'"):
        preset("smoke").with_overrides(executor="ray")


def test_importing_deepphoenix_does_not_import_ray() -> None:
    import subprocess

    code = ("import sys, deepphoenix.engine, deepphoenix.executor, deepphoenix.cli; "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_cluster_options_need_a_cluster_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(options_module, "_installed", lambda _name: True)  # Ray or not
    base = preset("smoke")
    for change in ({"ray_address": "10.0.0.1:6379"}, {"gpus_per_eval": 0.25},
                   {"train_on": "gpu"}):
        with pytest.raises(ConfigError, match="--executor ray"):
            base.with_overrides(**change)
        base.with_overrides(executor="ray", **change)  # fine with ray


@pytest.mark.parametrize("gpus", [-0.5, 1.5, float("nan"), True])
def test_gpus_per_eval_is_a_fraction_or_whole_gpus(gpus: float) -> None:
    with pytest.raises(ConfigError, match="gpus_per_eval"):
        preset("smoke").with_overrides(executor="ray", gpus_per_eval=gpus)


def test_old_runs_read_without_the_new_fields_keep_todays_behaviour() -> None:
    stored = {k: v for k, v in preset("smoke").to_dict().items() if k not in PLACEMENT}
    config = RunConfig.from_dict(stored)
    assert (config.executor, config.ray_address, config.gpus_per_eval, config.train_on) == (
        "local", None, 0.0, "cpu")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_address_nobody_listens_on_is_a_quick_error() -> None:
    pytest.importorskip("ray", reason="the ray executor needs Ray: pip install "
                        "'deepphoenix[ray]'")
    import ray

    if ray.is_initialized():
        pytest.skip("a Ray instance is already connected in this process")
    address = f"127.0.0.1:{_free_port()}"
    began = time.monotonic()
    with pytest.raises(ExecutorError, match=f"no Ray cluster answers at {address}"):
        get_executor("ray", ExecutorSettings(address=address, connect_timeout=5))
    assert time.monotonic() - began < 10
    assert not ray.is_initialized()


def test_a_malformed_address_is_named() -> None:
    pytest.importorskip("ray", reason="the ray executor needs Ray: pip install "
                        "'deepphoenix[ray]'")
    with pytest.raises(ExecutorError, match="HOST:PORT"):
        get_executor("ray", ExecutorSettings(address="localhost"))


def test_a_resume_may_move_the_run_but_change_nothing_else(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(options_module, "_installed", lambda _name: True)  # Ray or not
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURES / "legacy_v1" / "partial", run_dir)  # a run without the fields
    with pytest.raises(ConfigError, match="drop episodes"):
        Run(run_dir, resume=True, placement={"episodes": 9})
    run = Run(run_dir, resume=True, placement={"executor": "ray", "gpus_per_eval": 0.5})
    try:
        assert (run.config.executor, run.config.gpus_per_eval) == ("ray", 0.5)
        stored = json.loads((run_dir / "config.json").read_text())
        assert stored.get("executor", "local") == "local"  # the stored config is kept
    finally:
        run.close()
    run = Run(run_dir, resume=True, placement={"executor": "local"})  # back: ray options go
    try:
        assert (run.config.executor, run.config.gpus_per_eval) == ("local", 0.0)
    finally:
        run.close()
