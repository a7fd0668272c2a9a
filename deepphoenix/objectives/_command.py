"""The command objective: a project's own training command, its metric read from what it
prints (or writes).

``cmd:python train.py config/small.py --max_iters=50`` with ``--metric 'val loss
([0-9.]+)'``: the command runs in the sandbox, in the candidate's workspace (the project
with the candidate's files in place), and its score is the value of the last match of the
regular expression on its standard output. ``--metric json:PATH:KEY`` reads KEY (dotted
for nested objects) from the JSON file PATH the command writes in its workspace instead.

The parent side (`command_argv`, `parse_metric`, `check_command`) checks a command without
running anything; the worker side (`run_command`) runs it. The command is split as a shell
would split it (`shlex`) and started without a shell: ``cmd:sh -c '…'`` for pipes. It
runs with the worker's environment (offline, scrubbed), ``python`` (and ``python3``) being
the interpreter that runs deepphoenix, its packages importable, and the worker's thread
budget in ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and their kin (torch reads
``OMP_NUM_THREADS``; ``DEEPPHOENIX_THREADS`` holds the same number for a script that sets
its own). Every match is reported as a step (`report(step, value)`; the step is the named
group ``step`` when the expression has one, else the match's number, from 1), so
``--fidelity asha`` can stop a command at a rung: the process is ended once a reported
step reaches the rung's ``stop_step`` and the last value is its score. A command that exits
non-zero, prints no match, or runs past its time is a `CommandFailure` with that reason
and the last lines of its output.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepphoenix.errors import ConfigError

__all__ = ["COMMAND_PREFIX", "CommandFailure", "Metric", "check_command", "command_argv",
           "is_command", "parse_metric", "run_command"]

COMMAND_PREFIX = "cmd:"
_PYTHONS = ("python", "python3")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "DEEPPHOENIX_THREADS")
_TAIL_LINES = 20
_POLL = 0.5  # seconds of silence after which an exited command's output is done
_LINE_LIMIT = 4096  # characters of one output line kept (a progress bar without newlines)
_METRIC_HINT = ("a regular expression with one group, the value (e.g. 'val loss "
                "([0-9.]+)'), or json:PATH:KEY")


class CommandFailure(Exception):
    """The command failed as a candidate: non-zero exit, no match, no number, timeout."""

    def __init__(self, reason: str, metrics: dict[str, Any]) -> None:
        super().__init__(reason)
        self.metrics = metrics


def is_command(name: str) -> bool:
    return name.startswith(COMMAND_PREFIX)


def command_argv(name: str) -> list[str]:
    """The argument list of ``cmd:…``; `ConfigError` for an empty or badly quoted one."""
    text = name[len(COMMAND_PREFIX):]
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise ConfigError(f"objective {name!r}: the command cannot be split as a shell would "
                          f"({exc})") from None
    if not argv:
        raise ConfigError("objective 'cmd:' names no command; write cmd:python train.py …")
    return argv


@dataclass(frozen=True, slots=True)
class Metric:
    """Where a command's score is read: the last match of `pattern` on its output, or
    `key` of the JSON file `path` it writes."""

    text: str
    pattern: re.Pattern[str] | None = None
    value_group: int | str = 1
    step_group: str | None = None
    path: str = ""
    key: str = ""

    @property
    def is_json(self) -> bool:
        return self.pattern is None


def parse_metric(text: str) -> Metric:
    """A `--metric` value, checked; `ConfigError` names what is wrong with it."""
    if not isinstance(text, str) or not text:
        raise ConfigError(f"Expected --metric as {_METRIC_HINT} but got {text!r}")
    if text.startswith("json:"):
        path, sep, key = text[len("json:"):].rpartition(":")
        if not sep or not path or not key:
            raise ConfigError(f"--metric {text!r}: expected json:PATH:KEY (the JSON file the "
                              "command writes in its workspace, and the key of the score)")
        if Path(path).is_absolute() or ".." in Path(path).parts:
            raise ConfigError(f"--metric {text!r}: PATH is relative to the candidate's "
                              "workspace and stays inside it")
        return Metric(text, path=path, key=key)
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise ConfigError(f"--metric {text!r} is not a regular expression ({exc})") from None
    names = pattern.groupindex
    if "value" in names:
        return Metric(text, pattern, "value", "step" if "step" in names else None)
    if pattern.groups == 0:
        raise ConfigError(f"--metric {text!r} has no group: put the value in parentheses, "
                          "e.g. 'val loss ([0-9.]+)'")
    if pattern.groups > 1:
        raise ConfigError(f"--metric {text!r} has {pattern.groups} groups; keep one (the "
                          "value), or name them (?P<value>…) and (?P<step>…)")
    return Metric(text, pattern)


def check_command(name: str, project: Path) -> None:
    """`ConfigError` when the command's program is not found: ``python`` is always there;
    a path is looked up in the project (where the command runs), a bare name on PATH."""
    program = command_argv(name)[0]
    if program in _PYTHONS:
        return
    if "/" in program:
        where = Path(program) if Path(program).is_absolute() else project / program
        if where.is_file() and os.access(where, os.X_OK):
            return
        raise ConfigError(f"objective {name!r}: {program} is not an executable file in the "
                          f"project {project}")
    if shutil.which(program) is None:
        raise ConfigError(f"objective {name!r}: command {program!r} not found on PATH (nor "
                          "is it python, which is the interpreter running deepphoenix)")


# -- the worker side -----------------------------------------------------------------------

def command_env(workspace: Path, threads: int) -> dict[str, str]:
    """The command's environment: the worker's, ``python`` first on PATH, the threads."""
    shims = workspace / ".deepphoenix-bin"
    shims.mkdir(exist_ok=True)
    for name in _PYTHONS:  # a script, not a link: a venv's python finds its packages
        shim = shims / name
        shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
        shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "DEEPPHOENIX_WORKER"}
    env["PATH"] = os.pathsep.join([str(shims), *filter(None, [env.get("PATH", "")])])
    if threads > 0:
        env.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    return env


def run_command(name: str, metric: Metric, workspace: Path, *, timeout: float | None,
                threads: int = 0, stop_step: int | None = None,
                report: Callable[[int, float], None] | None = None,
                ) -> tuple[float, dict[str, Any]]:
    """Run ``cmd:…`` in `workspace`; its score and metrics (exit status, reported steps,
    the last lines of output). `CommandFailure` for a candidate's failure."""
    argv = command_argv(name)
    env = command_env(workspace, threads)
    if argv[0] in _PYTHONS:
        argv[0] = sys.executable
    began = time.monotonic()
    deadline = None if timeout is None else began + timeout
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    reports: list[tuple[int, float]] = []
    state: dict[str, Any] = {"stopped": False, "bad": ""}

    def take(line: str) -> None:
        tail.append(line[:_LINE_LIMIT])
        if metric.pattern is None or state["bad"]:
            return
        for found in metric.pattern.finditer(line):
            text = found.group(metric.value_group)
            try:
                value = float(text)
            except (TypeError, ValueError):
                state["bad"] = f"--metric matched {str(text)[:40]!r}, which is not a number"
                return
            step = len(reports) + 1
            if metric.step_group is not None:
                with contextlib.suppress(TypeError, ValueError):
                    step = int(float(found.group(metric.step_group)))
            reports.append((step, value))
            if report is not None:
                report(step, value)
            if stop_step is not None and step >= stop_step:
                state["stopped"] = True

    try:
        proc = subprocess.Popen(argv, cwd=workspace, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
    except OSError as exc:
        raise CommandFailure(f"the command cannot start: {exc.strerror or exc}",
                             {"exit_code": None}) from None
    timed_out = _pump(proc, take, deadline, lambda: bool(state["stopped"] or state["bad"]))
    code = proc.returncode
    metrics: dict[str, Any] = {"exit_code": code, "output_tail": "\n".join(tail),
                               "command_seconds": time.monotonic() - began}
    if reports:
        metrics["reports"] = reports
    if stop_step is not None:
        metrics["stop_step"] = stop_step
        metrics["asked_to_stop"] = bool(state["stopped"])
    last = f": {_last_lines(tail)}" if tail else " (it printed nothing)"
    if state["bad"]:
        raise CommandFailure(f"{state['bad']}{last}", metrics)
    if state["stopped"]:  # ended at a rung: its last value is the rung's score
        return reports[-1][1], metrics
    if timed_out:
        raise CommandFailure(f"the command ran past its {timeout:g} s{last}", metrics)
    if code != 0:
        raise CommandFailure(f"the command exited with status {code}{last}", metrics)
    if metric.is_json:
        return _json_score(metric, workspace, metrics), metrics
    if not reports:
        raise CommandFailure(f"no line of its output matches --metric {metric.text!r}{last}",
                             metrics)
    return reports[-1][1], metrics


def _pump(proc: subprocess.Popen[bytes], take: Callable[[str], None], deadline: float | None,
          stop: Callable[[], bool]) -> bool:
    """Feed each line of the command's output to `take` until it exits, `stop()` says so
    (then it is ended), or the deadline passes (then too); whether the deadline passed.
    No thread: a thread left behind would retire the worker."""
    assert proc.stdout is not None and proc.stderr is not None
    selector = selectors.DefaultSelector()
    buffers: dict[int, bytes] = {}
    for stream in (proc.stdout, proc.stderr):
        os.set_blocking(stream.fileno(), False)
        selector.register(stream, selectors.EVENT_READ)
        buffers[stream.fileno()] = b""
    timed_out = False
    try:
        while selector.get_map():
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                timed_out = True
                break
            ready = selector.select(timeout=_POLL if wait is None else min(wait, _POLL))
            if not ready and proc.poll() is not None:
                break  # it exited; a process it left behind holds the pipes open
            for key, _ in ready:
                fd = key.fileobj.fileno()  # type: ignore[union-attr]
                chunk = os.read(fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    if buffers[fd]:
                        take(buffers[fd].decode("utf-8", "replace"))
                    continue
                *lines, buffers[fd] = (buffers[fd] + chunk).split(b"\n")
                for line in lines:
                    take(line.decode("utf-8", "replace").rstrip("\r"))
                if len(buffers[fd]) > 1 << 20:  # no newline in a MiB: keep it as a line
                    take(buffers[fd].decode("utf-8", "replace"))
                    buffers[fd] = b""
            if stop():
                break
    finally:
        selector.close()
        # The command's process group: itself if it still runs, and whatever it left.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            stream.close()
    return timed_out


def _last_lines(tail: deque[str], count: int = 3) -> str:
    return " | ".join(line.strip() for line in list(tail)[-count:] if line.strip())[:600]


def _json_score(metric: Metric, workspace: Path, metrics: dict[str, Any]) -> float:
    path = workspace / metric.path
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CommandFailure(f"--metric {metric.text!r}: {metric.path} cannot be read as "
                             f"JSON after the command ({exc})", metrics) from None
    for part in metric.key.split("."):
        if not isinstance(data, Mapping) or part not in data:
            raise CommandFailure(f"--metric {metric.text!r}: {metric.path} has no key "
                                 f"{metric.key!r}", metrics)
        data = data[part]
    if isinstance(data, bool) or not isinstance(data, int | float) or not math.isfinite(data):
        raise CommandFailure(f"--metric {metric.text!r}: {metric.key} is {str(data)[:40]!r}, "
                             "not a finite number", metrics)
    return float(data)
