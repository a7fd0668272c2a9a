from __future__ import annotations

import os
from pathlib import Path

# No hub, ever: any accidental download attempt fails fast instead of hanging.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
from hypothesis import HealthCheck, settings

# Workers are separate processes: test-only job modules (tests/sandbox/_hostile.py) must be
# importable there too, whatever directory pytest was started from.
_ROOT = str(Path(__file__).resolve().parent.parent)
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p)

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=60
)
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow],
                          max_examples=60, derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`deepphoenix run --preset smoke` (the default proposer, `learned`) through the CLI,
    once per session: the tests that read a finished learned run share it, and copy it
    before they change anything in it. tests/report has its own (a random run)."""
    from click.testing import CliRunner

    from deepphoenix.cli import cli

    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    result = CliRunner().invoke(cli, ["run", "--preset", "smoke", "--run-dir", str(run_dir)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return run_dir, result.stdout
