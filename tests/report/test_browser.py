"""The report in a real browser: Debian's chromium driven by playwright (never a browser
download). Skipped where chromium or playwright is missing; `.ci/run` installs both."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from deepphoenix.lineage import write_report
from tests.report.conftest import database_node_count

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="no /usr/bin/chromium (apt-get install chromium; .ci/run installs it)")

# The page position of one lineage node, from plotly's own axes.
_NODE_POSITION = """([run, hash]) => {
  const gd = document.getElementById("lineage-" + run);
  for (const trace of gd.data) {
    if (trace.meta !== "lineage-node") continue;
    const i = trace.customdata.indexOf(hash);
    if (i < 0) continue;
    const full = gd._fullLayout, box = gd.getBoundingClientRect();
    return [box.left + window.scrollX + full._size.l + full.xaxis.l2p(trace.x[i]),
            box.top + window.scrollY + full._size.t + full.yaxis.l2p(trace.y[i])];
  }
  return null;
}"""


def _open(page: Any, path: Path) -> tuple[list[str], list[str], float]:
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.on("request", lambda r: requests.append(r.url))
    began = time.monotonic()
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    return problems, requests, time.monotonic() - began


def _save(page: Any, path: Path) -> Path:
    page.screenshot(path=str(path), full_page=True)
    artefacts = os.environ.get("DEEPPHOENIX_ARTIFACTS")
    if artefacts:
        Path(artefacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(artefacts) / path.name)
    return path


def _child_with_diff(run_dir: Path) -> str:
    """A proposed variant that is not the best (the panel opens on the best), read from
    the database."""
    import sqlite3

    with sqlite3.connect(run_dir / "run.sqlite") as db:
        best = db.execute("SELECT value FROM meta WHERE key = 'best'").fetchone()[0]
        row = db.execute("SELECT child FROM attempts WHERE child IS NOT NULL AND "
                         "outcome = 'ok' AND json_quote(child) != ? ORDER BY id LIMIT 1",
                         (best,)).fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize("runs", ["one", "two"])
def test_report_in_chromium(smoke_run: Path, legacy_run: Path, tmp_path: Path,
                            runs: str) -> None:
    run_dirs = [smoke_run] if runs == "one" else [smoke_run, legacy_run]
    _check_in_browser(run_dirs, tmp_path, f"report-{runs}")


@pytest.mark.skipif(not os.environ.get("DEEPPHOENIX_REPORT_RUNS"),
                    reason="set DEEPPHOENIX_REPORT_RUNS=DIR[:DIR…] to check reports of "
                           "your own runs (a cpu-preset run, a GPT-task run, several)")
def test_report_of_given_runs_in_chromium(tmp_path: Path) -> None:
    given = os.environ.get("DEEPPHOENIX_REPORT_RUNS", "")
    for index, group in enumerate(given.split(",")):
        run_dirs = [Path(p) for p in group.split(":") if p]
        _check_in_browser(run_dirs, tmp_path, f"report-given-{index}")


def _check_in_browser(run_dirs: list[Path], tmp_path: Path, name: str) -> None:
    report = tmp_path / f"{name}.html"
    summary = write_report(run_dirs, report)
    assert summary.bytes < 10_000_000
    expected = [database_node_count(d) for d in run_dirs]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            problems, requests, seconds = _open(page, report)
            assert problems == []
            assert requests == [report.as_uri()]  # the file itself, nothing else
            assert int(page.get_attribute("body", "data-lineage-nodes") or -1) == sum(expected)
            for index, count in enumerate(expected):
                drawn = page.get_attribute(f".lineage[data-run='{index}']", "data-nodes")
                assert int(drawn or -1) == count
            # Click a proposed variant: the details panel shows its diff.
            child = _child_with_diff(run_dirs[0])
            assert page.get_attribute("#details-0", "data-selected") != child
            page.locator("#lineage-0").scroll_into_view_if_needed()
            where = page.evaluate(_NODE_POSITION, ["0", child])
            assert where is not None
            page.evaluate("([x, y]) => window.scrollTo(0, Math.max(0, y - 400))", where)
            scroll = page.evaluate("[window.scrollX, window.scrollY]")
            x, y = where[0] - scroll[0], where[1] - scroll[1]
            page.mouse.move(x, y)
            page.mouse.click(x, y)
            page.wait_for_selector(f"#details-0[data-selected='{child}']", timeout=10_000)
            panel = page.inner_text("#details-0")
            assert "diff against its parent" in panel
            assert f"+++ b/{child}" in panel and "@@" in panel
            shot = _save(page, tmp_path / f"{name}.png")
            assert shot.stat().st_size > 10_000
            assert problems == []
            print(f"{name}: {summary.bytes / 1e6:.1f} MB, loaded in {seconds:.2f} s")
            assert seconds < 15  # generous: a loaded CI machine; about 2 s when idle
        finally:
            browser.close()
