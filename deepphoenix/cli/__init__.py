"""The `deepphoenix` command line. Library code never prints or exits; this package turns
results into text and `DeepPhoenixError` into one line and an exit code."""

from __future__ import annotations

import click

from deepphoenix import __version__
from deepphoenix.cli._common import DeepPhoenixGroup
from deepphoenix.cli._learn import dataset, propose, train
from deepphoenix.cli._lineage import lineage, plot
from deepphoenix.cli._programs import check, diff, grammars, mutate, seed, sites
from deepphoenix.cli._proposer import proposer
from deepphoenix.cli._quine import quine
from deepphoenix.cli._report import report
from deepphoenix.cli._run import evaluate, run

__all__ = ["cli", "main"]


@click.group(cls=DeepPhoenixGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="deepphoenix")
def cli() -> None:
    """AST-grounded program mutation with a learned T5 proposer (DeepPhoenix)."""


for command in (run, seed, grammars, sites, mutate, check, diff, dataset, train, propose,
                evaluate, lineage, plot, report, proposer, quine):
    cli.add_command(command)


def main() -> None:
    cli.main(prog_name="deepphoenix")
