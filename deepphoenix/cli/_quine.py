"""`deepphoenix quine`: neural quines beyond scoring them (the ouroboros)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from deepphoenix.cli._common import (
    DEVICES,
    SummaryGroup,
    echo_json,
    fail,
    json_option,
    require_device,
)
from deepphoenix.quine import Generation, ouroboros
from deepphoenix.scores import printable
from deepphoenix.status import VariantStatus

__all__ = ["quine"]


@click.group(cls=SummaryGroup)
def quine() -> None:
    """Neural quines: programs whose model prints itself."""


@quine.command("ouroboros", short_help="Chain generations of a source quine's own prints.")
@click.argument("source", type=str)
@click.option("--generations", "-k", type=click.IntRange(1, 1000), default=3,
              show_default=True, help="Generations at most (the chain stops earlier when a "
                                      "print fails to ground).")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="A new directory for the lineage [default: runs/ouroboros-<time>].")
@click.option("--grammar", "-g", default="quine", show_default=True, metavar="NAME|PATH",
              help="The grammar whose sites a print may change.")
@click.option("--seed", "seed_", type=int, default=0, show_default=True,
              help="Seed of every generation's initialisation (one derived per generation).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=1800.0,
              show_default=True, help="Seconds per generation; training stops at 3/4 of it.")
@click.option("--device", type=DEVICES, default="auto", show_default=True,
              help="Where each generation trains: auto uses CUDA when present.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch threads of the worker [default: every core].")
@json_option
def ouroboros_command(source: str, generations: int, run_dir: Path | None, grammar: str,
                      seed_: int, timeout: float, device: str, threads: int | None,
                      as_json: bool) -> None:
    """Train the source quine SOURCE (a built-in seed such as quine-source, or a file) in
    a sandboxed worker, take the file its model prints, and make it the next generation
    only once it parses and differs from its parent at grammar sites alone. Nothing the
    model prints is executed: the next generation is the trusted parent with literal
    edits. Every generation, with its fidelity, lands in RUN_DIR (`deepphoenix lineage
    show RUN_DIR`)."""
    require_device(device)
    folder = run_dir or Path("runs") / time.strftime("ouroboros-%Y%m%d-%H%M%S")

    def shown(g: Generation) -> None:
        if as_json:
            return
        if g.status != VariantStatus.SCORED:
            click.echo(printable(f"generation {g.number} {g.hash}: {g.reason}"))
            return
        click.echo(f"generation {g.number} {g.hash}: fidelity {g.fidelity:.4f}"
                   f"{' (exact)' if g.exact else ''}, print {g.outcome}"
                   f"{': ' + g.reason if g.reason else ''}"
                   f"{' -> ' + g.child if g.child else ''} ({g.seconds:.1f} s)")

    chain = ouroboros(folder, source, generations, grammar=grammar, seed=seed_,
                      timeout=timeout, device=device, threads=threads or 0,
                      on_generation=shown)
    if as_json:
        echo_json({"run_dir": str(folder), "generations": [g.to_dict() for g in chain]})
    else:
        click.echo(f"{len(chain)} generation(s) in {folder}")
    last = chain[-1]
    if last.status != VariantStatus.SCORED:
        fail(last.reason)
    if last.child is None and len(chain) < generations:
        fail(f"the chain stopped at generation {last.number}: its print is {last.outcome}"
             f"{': ' + last.reason if last.reason else ''}")
