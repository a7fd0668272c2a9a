from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from deepphoenix.cli import cli

LEGACY = Path(__file__).parent.parent / "fixtures" / "legacy_v1" / "partial"


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished smoke run with the random proposer; --max-params rejects some variants
    before they are evaluated, so the report has rejections to show. Made once per
    session."""
    run_dir = tmp_path_factory.mktemp("report") / "smoke-random"
    result = CliRunner().invoke(cli, [
        "run", "--preset", "smoke", "--proposer", "random", "--max-params", "720000",
        "--run-dir", str(run_dir)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.fixture
def legacy_run(tmp_path: Path) -> Path:
    """A copy of the schema-1 run directory (interrupted after 5 evaluations)."""
    target = tmp_path / "legacy"
    shutil.copytree(LEGACY, target)
    return target


def database_node_count(run_dir: Path) -> int:
    """Variants plus attempts that produced no recorded variant, read with plain SQL."""
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        variants = db.execute("SELECT COUNT(*) FROM variants").fetchone()[0]
        orphans = db.execute(
            "SELECT COUNT(*) FROM attempts WHERE child IS NULL OR child NOT IN "
            "(SELECT hash FROM variants)").fetchone()[0]
    return int(variants) + int(orphans)
