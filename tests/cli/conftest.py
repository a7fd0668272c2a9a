from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from deepphoenix.cli import cli
from deepphoenix.seeds import seed_source

Invoke = Callable[..., Result]


@pytest.fixture
def invoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Run the CLI in tmp_path, stdout and stderr kept apart."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str | Path, input: str | None = None) -> Result:
        argv: Sequence[str] = [str(a) for a in args]
        return runner.invoke(cli, argv, input=input, catch_exceptions=False)

    return run


@pytest.fixture
def paper(tmp_path: Path) -> Path:
    path = tmp_path / "s.py"
    path.write_text(seed_source("paper"))
    return path
