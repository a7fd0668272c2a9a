"""The HTML report without a browser: self-contained, every node's details embedded, the
CLI's messages."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from deepphoenix.cli import cli
from deepphoenix.lineage import write_report
from tests.report.conftest import database_node_count


def _data(page: str) -> dict[str, dict[str, dict[str, object]]]:
    found = re.search(r'<script type="application/json" id="deepphoenix-data">(.*?)</script>',
                      page, re.S)
    assert found is not None
    return json.loads(found.group(1))  # type: ignore[no-any-return]


def test_report_is_self_contained_and_embeds_every_node(legacy_run: Path,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    summary = write_report([legacy_run], out)
    page = out.read_text()
    assert summary.nodes == database_node_count(legacy_run) == len(_data(page)["0"])
    # no script, style or font from anywhere but the file itself
    assert not re.search(r'<(script|link|img|iframe)[^>]+(src|href)\s*=\s*"(https?:)?//', page)
    assert "cdn.plot.ly" not in page.split("</script>")[-1]
    assert summary.bytes < 10_000_000
    assert "fewshot (lower is better)" in page


def test_untrusted_text_cannot_close_the_data_script(legacy_run: Path, tmp_path: Path) -> None:
    import sqlite3

    with sqlite3.connect(legacy_run / "run.sqlite") as db:
        db.execute("UPDATE attempts SET raw_text = '</script><script>alert(1)</script>', "
                   "child = NULL WHERE id = (SELECT MIN(id) FROM attempts)")
    out = tmp_path / "r.html"
    write_report([legacy_run], out)
    page = out.read_text()
    assert "</script><script>alert(1)" not in page
    nodes = _data(page)["0"]
    assert any("alert(1)" in str(d["diff"]) for d in nodes.values())


def test_report_cli(smoke_run: Path, legacy_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "both.html"
    result = CliRunner().invoke(cli, ["report", str(smoke_run), str(legacy_run), "-o",
                                      str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out} (2 runs," in result.output
    data = _data(out.read_text())
    assert len(data["0"]) == database_node_count(smoke_run)
    assert len(data["1"]) == database_node_count(legacy_run)
    failed = [d for d in data["0"].values() if d["status"] == "rejected"]
    assert failed and all(d["stage"] == "constraint" and "over the limit" in str(d["reason"])
                          for d in failed)
    # what the cap cost is counted: rejected before evaluation / drawn again / lost
    page = out.read_text()
    assert "checked out / redrawn / lost" in page
    assert "<h3>Constraints</h3>" in page and "drawn again" in page


def test_report_of_a_missing_run_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["report", str(tmp_path / "nope"), "-o",
                                      str(tmp_path / "r.html")])
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0 and "no such run directory" in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_best_py_runs_outside_deepphoenix(smoke_run: Path, tmp_path: Path) -> None:
    """run_best.py (written next to best.py) runs with a bare environment from elsewhere,
    and builds the best variant's model."""
    import sqlite3
    import subprocess
    import sys

    with sqlite3.connect(smoke_run / "run.sqlite") as db:
        best = json.loads(db.execute("SELECT value FROM meta WHERE key = 'best'").fetchone()[0])
        metrics = db.execute("SELECT metrics FROM variants WHERE hash = ?", (best,)).fetchone()
    params = json.loads(metrics[0])["params"]
    done = subprocess.run([sys.executable, str(smoke_run / "run_best.py")], cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"with {params:,} parameters" in done.stdout


def test_a_failure_shows_stage_reason_and_traceback(legacy_run: Path, tmp_path: Path) -> None:
    import sqlite3

    with sqlite3.connect(legacy_run / "run.sqlite") as db:
        victim = db.execute("SELECT child FROM attempts WHERE child IS NOT NULL "
                            "ORDER BY id LIMIT 1").fetchone()[0]
        db.execute("UPDATE variants SET status = 'failed', stage = 'smoke', reason = 'boom', "
                   "traceback = 'Traceback: ValueError', mean_loss = NULL WHERE hash = ?",
                   (victim,))
    out = tmp_path / "r.html"
    write_report([legacy_run], out)
    node = _data(out.read_text())["0"][victim]
    assert (node["status"], node["stage"], node["reason"]) == ("failed", "smoke", "boom")
    assert node["traceback"] == "Traceback: ValueError"
    assert str(node["diff"]).startswith("--- a/")
