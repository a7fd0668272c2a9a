"""`deepphoenix report`: one self-contained HTML file of one or more runs."""

from __future__ import annotations

from pathlib import Path

import click

from deepphoenix.lineage import write_report

__all__ = ["report"]


@click.command(short_help="Write one self-contained HTML report of one or more runs.")
@click.argument("run_dirs", nargs=-1, required=True,
                type=click.Path(file_okay=False, path_type=Path), metavar="RUN_DIR...")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("report.html"), show_default=True,
              help="The HTML file to write (replaced if it exists).")
def report(run_dirs: tuple[Path, ...], out: Path) -> None:
    """Write one HTML file that opens offline (every script inlined): each run's lineage
    (click a node for its edits, diff and failure), Figure 1, failures and config, and,
    across the runs, the best score so far against evaluations and wall time and score
    against parameter count with the Pareto front."""
    summary = write_report(list(run_dirs), out)
    runs = f"{summary.runs} run{'' if summary.runs == 1 else 's'}"
    click.echo(f"wrote {out} ({runs}, {summary.nodes} lineage nodes, "
               f"{summary.bytes / 1e6:.1f} MB)")
