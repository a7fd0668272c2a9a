"""The command objective (issue 32): a project's own command, checked on the parent side
without running it, and run (a real subprocess, in this process: the worker's code path)
with its metric read from what it prints or writes."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from deepphoenix.errors import ConfigError
from deepphoenix.evaluator import build_workspace
from deepphoenix.objectives import (
    ObjectiveSpec,
    check_command,
    parse_metric,
    resolve_objective,
)
from deepphoenix.objectives._command import THREAD_VARIABLES, CommandFailure, run_command

METRIC = r"val loss ([0-9.]+)"


def _script(folder: Path, body: str, name: str = "train.py") -> None:
    (folder / name).write_text(body)


def _run(folder: Path, body: str, metric: str = METRIC, **kw):  # type: ignore[no-untyped-def]
    _script(folder, body)
    return run_command("cmd:python train.py", parse_metric(metric), folder,
                       timeout=kw.pop("timeout", 60.0), **kw)


def test_a_command_objective_is_checked_without_running() -> None:
    spec = resolve_objective("cmd:python train.py --max_iters=5", None, METRIC)
    assert spec.command and not spec.builtin and not spec.uses_task
    assert ObjectiveSpec.from_dict(spec.to_dict()) == spec  # the metric travels with it
    assert resolve_objective("cmd:python t.py", "maximize", "json:out.json:acc"
                             ).direction.value == "maximize"
    bad = {
        "": "needs --metric",
        "val loss [0-9.]+": "has no group: put the value in parentheses",
        "(a) (b)": "has 2 groups",
        "val loss ([0-9.]+": "is not a regular expression",
        "json:out.json": "expected json:PATH:KEY",
        "json:../x.json:k": "stays inside it",
    }
    for metric, message in bad.items():
        with pytest.raises(ConfigError, match=message):
            resolve_objective("cmd:python train.py", None, metric or None)
    with pytest.raises(ConfigError, match="not one"):
        resolve_objective("fewshot", None, METRIC)
    with pytest.raises(ConfigError, match="cannot be split"):
        resolve_objective("cmd:python 'train.py", None, METRIC)
    with pytest.raises(ConfigError, match="names no command"):
        resolve_objective("cmd:  ", None, METRIC)
    named = parse_metric(r"step (?P<step>\d+):.*val loss (?P<value>[0-9.]+)")
    assert (named.value_group, named.step_group) == ("value", "step")


def test_a_command_that_is_not_found_is_refused(tmp_path: Path) -> None:
    check_command("cmd:python train.py", tmp_path)  # python is deepphoenix's interpreter
    check_command("cmd:sh -c true", tmp_path)
    with pytest.raises(ConfigError, match="command 'pyhton' not found"):
        check_command("cmd:pyhton train.py", tmp_path)
    with pytest.raises(ConfigError, match="not an executable file in the project"):
        check_command("cmd:./run.sh", tmp_path)
    (tmp_path / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (tmp_path / "run.sh").chmod(0o755)
    check_command("cmd:./run.sh", tmp_path)


def test_the_last_match_is_the_score_and_every_match_a_step(tmp_path: Path) -> None:
    seen: list[tuple[int, float]] = []
    score, metrics = _run(tmp_path, """
import sys
for step, loss in enumerate([3.5, 2.25, 1.125]):
    print(f"step {step}: train loss {loss + 1}, val loss {loss}")
print("noise on stderr", file=sys.stderr)
""", report=lambda step, value: seen.append((step, value)))
    assert score == 1.125
    assert seen == metrics["reports"] == [(1, 3.5), (2, 2.25), (3, 1.125)]
    assert metrics["exit_code"] == 0 and "noise on stderr" in metrics["output_tail"]
    named = _run(tmp_path, "for i in (10, 20):\n    print(f'step {i}: val loss {i / 10}')\n",
                 metric=r"step (?P<step>\d+): val loss (?P<value>[0-9.]+)")
    assert named[1]["reports"] == [(10, 1.0), (20, 2.0)]


def test_a_failing_command_is_a_failure_with_its_last_lines(tmp_path: Path) -> None:
    with pytest.raises(CommandFailure, match=r"exited with status 3: .*val loss 1\.0 \| boom"):
        _run(tmp_path, "import sys\nprint('val loss 1.0')\nprint('boom')\nsys.exit(3)\n")
    with pytest.raises(CommandFailure, match="no line of its output matches") as info:
        _run(tmp_path, "print('train loss 1.0')\n")
    assert info.value.metrics["exit_code"] == 0
    with pytest.raises(CommandFailure, match="which is not a number"):
        _run(tmp_path, "print('val loss 1.2.3')\n")
    with pytest.raises(CommandFailure, match="ran past its 1 s"):
        _run(tmp_path, "import time\nprint('val loss 1.0', flush=True)\ntime.sleep(30)\n",
             timeout=1.0)


def test_a_command_is_ended_at_its_rung(tmp_path: Path) -> None:
    began = time.monotonic()
    score, metrics = _run(tmp_path, """
import time
for step in range(1, 100):
    print(f"val loss {1 / step}", flush=True)
    time.sleep(0.05)
""", stop_step=3)
    assert score == pytest.approx(1 / 3) and metrics["asked_to_stop"]
    assert len(metrics["reports"]) == 3 and time.monotonic() - began < 4


def test_the_command_gets_the_interpreter_and_the_thread_budget(tmp_path: Path) -> None:
    score, _ = _run(tmp_path, f"""
import json, os, sys
json.dump({{"exe": sys.executable, "threads": {{k: os.environ.get(k)
          for k in {THREAD_VARIABLES!r}}}, "worker": "DEEPPHOENIX_WORKER" in os.environ}},
          open("seen.json", "w"))
print(json.dumps({{"val": {{"loss": 0.5}}}}), file=open("metrics.json", "w"))
""", metric="json:metrics.json:val.loss", threads=3)
    assert score == 0.5
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert Path(seen["exe"]).resolve() == Path(sys.executable).resolve()
    assert set(seen["threads"].values()) == {"3"} and not seen["worker"]
    with pytest.raises(CommandFailure, match=r"has no key 'val\.acc'"):
        _run(tmp_path, "open('metrics.json', 'w').write('{\"val\": {}}')\n",
             metric="json:metrics.json:val.acc")


def test_a_workspace_is_the_project_with_the_candidates_files(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (project / "config").mkdir()
    (project / "config" / "small.py").write_text("n_layer = 2\n")
    (project / "model.py").write_text("# the project's\n")
    (project / "data.bin").write_bytes(b"\0" * 4096)
    (project / "run.sh").write_text("#!/bin/sh\n")
    (project / "run.sh").chmod(0o755)
    (project / "alias.py").symlink_to("model.py")
    into = build_workspace(tmp_path / "ws", project,
                           {"config/small.py": "n_layer = 4\n", "model.py": "# ours\n"},
                           link_bytes=1024)
    assert not (into / ".git").exists()
    assert (into / "config" / "small.py").read_text() == "n_layer = 4\n"
    assert (project / "config" / "small.py").read_text() == "n_layer = 2\n"  # untouched
    assert (into / "data.bin").is_symlink()  # over the size: linked, never copied
    assert (into / "data.bin").resolve() == (project / "data.bin").resolve()
    assert not (into / "run.sh").is_symlink() and (into / "run.sh").stat().st_mode & 0o100
    assert (into / "alias.py").read_text() == "# ours\n"  # a link inside stays inside
    with pytest.raises(OSError, match="must stay inside"):
        build_workspace(tmp_path / "ws", project, {"../evil.py": ""}, link_bytes=1024)


def test_a_process_left_behind_does_not_hold_the_score(tmp_path: Path) -> None:
    began = time.monotonic()
    score, metrics = _run(tmp_path, """
import subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])  # keeps the pipes
print("val loss 0.25", flush=True)
""", timeout=20.0)
    assert score == 0.25 and metrics["exit_code"] == 0 and time.monotonic() - began < 10
