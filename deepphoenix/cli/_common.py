"""What every command shares: the one error-catching entry point, shared options, and
small output helpers. Only the CLI imports click."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from deepphoenix.device import check_device
from deepphoenix.errors import ConfigError, DeepPhoenixError
from deepphoenix.grammar import Grammar
from deepphoenix.mutator import Program, parse_program, read_source, resolve_grammar
from deepphoenix.scores import printable

__all__ = [
    "DEVICES",
    "EXIT_INTERRUPTED",
    "DeepPhoenixGroup",
    "SummaryGroup",
    "echo_json",
    "fail",
    "grammar_option",
    "json_option",
    "load_program",
    "require_device",
    "shown",
    "staged_model",
]

EXIT_INTERRUPTED = 130
F = TypeVar("F", bound=Callable[..., Any])


def summary(command: click.Command) -> str:
    """A command's one-line summary for a command list: its `short_help`, else the first
    sentence of its help, whole (click would cut it at about 45 characters with "...")."""
    if command.short_help:
        return command.short_help
    text = " ".join((command.help or "").split("\n\n")[0].split())
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


class SummaryGroup(click.Group):
    """A click group that lists its commands with whole summaries, wrapped, never cut."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, summary(command)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class DeepPhoenixGroup(SummaryGroup):
    """A click group whose every failure is one line on stderr and an exit code:
    1 for deepphoenix errors, 2 for usage errors, 130 for Ctrl-C. Never a traceback."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        try:
            result = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                                  standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            sys.exit(0)
        except click.ClickException as exc:
            hint = ""
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                hint = f" (see '{exc.ctx.command_path} --help')"
            click.echo(f"error: {_one_line(exc.format_message())}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("error: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except DeepPhoenixError as exc:
            click.echo(f"error: {_one_line(str(exc))}", err=True)
            sys.exit(exc.exit_code)
        except BrokenPipeError:
            # `deepphoenix … | head`: the reader left; not an error of ours.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(0)
        except sqlite3.DatabaseError as exc:
            # A damaged or locked run database surfaces at query time, anywhere.
            click.echo(f"error: run database: {_one_line(str(exc))}", err=True)
            sys.exit(1)
        except OSError as exc:
            # The file system said no (permissions, a full disk) where we wrote or read.
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"error: {where}{_one_line(exc.strerror or str(exc))}", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


def _one_line(text: str) -> str:
    return printable(" ".join(text.split()))


def shown(text: str, multiline: bool = False) -> str:
    """Text for a terminal: control characters a candidate may have put in it (an
    exception's message, a string value) shown as escapes (`printable`)."""
    return printable(text, multiline)


def fail(message: str, code: int = 1) -> NoReturn:
    """Stop a command with one line on stderr (for verdicts that are not exceptions)."""
    click.echo(f"error: {_one_line(message)}", err=True)
    sys.exit(code)


class _DeviceType(click.ParamType):
    """A device name, checked by the same rule as a run config (`check_device`)."""

    name = "device"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        try:
            return check_device(value)
        except DeepPhoenixError as exc:
            self.fail(str(exc), param, ctx)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "auto|cpu|cuda|cuda:N"


DEVICES = _DeviceType()


def require_device(device: str) -> None:
    """Fail in one line, before anything starts, when `device` names CUDA and this
    machine has none (otherwise a worker fails late inside torch). Imports torch, so only
    when CUDA is asked for; `auto` and `cpu` need no check."""
    if not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        build = ("this torch is built without CUDA" if torch.version.cuda is None
                 else "no CUDA device is visible")
        raise ConfigError(f"--device {device}: {build}; use --device cpu or --device auto")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} "
                          "CUDA device(s); use an index below that")


def grammar_option(f: F | None = None, *, default: str | None = "t5") -> Any:
    """`--grammar`; `default=None` lets a preset decide (`run`)."""
    option = click.option(
        "--grammar", "-g", "grammar", default=default, show_default=default is not None,
        metavar="NAME|PATH|infer",
        help="A registered grammar, a grammar TOML file, or 'infer' to infer one from FILE.",
    )
    return option(f) if f is not None else option


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(f)


def load_program(path: str, grammar: str | Grammar) -> Program:
    """Read FILE and parse it against the grammar spec (name, path, or infer)."""
    text = read_source(path)
    resolved = resolve_grammar(grammar, text, path)
    return parse_program(text, resolved, path)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


@contextmanager
def staged_model(out: Path) -> Iterator[Path]:
    """A fresh staging folder beside `out`, for a command that trains a model into it:
    when the block ends without an error, its "model" folder is moved to `out` (which
    may exist, empty); the staging folder is removed either way, so `out` never holds a
    half-written model."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield staging
        if out.exists():
            out.rmdir()
        (staging / "model").rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
