"""A candidate that kills the run: counted when the run restarts, tried alone, and after a
second death recorded as failed instead of a third try; the resumed run finishes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from deepphoenix.evaluator import EvalStatus
from deepphoenix.search import Run, preset
from deepphoenix.search._quarantine import QUARANTINED, Quarantine
from tests.search.test_run import _spawn


def test_a_run_that_died_twice_on_a_candidate_quarantines_it(tmp_path: Path) -> None:
    run = Run(tmp_path / "r", preset("smoke"))
    store = run.store
    jobs = [("aaa", "a"), ("bbb", "b"), ("ccc", "c")]
    try:
        first = Quarantine(store)
        assert first.rounds(jobs) == ([], [jobs])  # nothing suspect: one round
        # The run "dies" with all three in flight.
        with pytest.raises(RuntimeError), first.in_flight(["aaa", "bbb", "ccc"]):
            raise RuntimeError("killed")
        second = Quarantine(store)  # the resume counts one death against each
        failed, rounds = second.rounds(jobs)
        assert failed == [] and rounds == [[j] for j in jobs]  # each alone
        with second.in_flight(["aaa"]):
            pass  # aaa completes
        with pytest.raises(RuntimeError), second.in_flight(["bbb"]):
            raise RuntimeError("killed again")  # bbb kills the resumed run too
        third = Quarantine(store)
        failed, rounds = third.rounds([("bbb", "b"), ("ccc", "c")])
        assert [(r.hash, r.status, r.reason) for r in failed] == [
            ("bbb", EvalStatus.FAILED, QUARANTINED)]
        assert rounds == [[("ccc", "c")]]  # still a suspect (one death): alone
    finally:
        run.close()


KILLER = '''\
import os
import signal

import torch


def _the_run():
    """The deepphoenix run among our ancestors (visible only without a PID namespace)."""
    pid = os.getpid()
    while pid > 1:
        with open(f"/proc/{pid}/stat") as f:
            pid = int(f.read().rsplit(")", 1)[1].split()[1])
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().split(b"\\0")
        if b"deepphoenix" in words and b"run" in words:
            return pid
    return None


n = 1
if n == 3 and _the_run():
    os.kill(_the_run(), signal.SIGKILL)
model = torch.nn.Linear(n, 1)
'''
GRAMMAR = '''\
name = "killer"
[sites.n]
select = "name:n"
kind = "int"
min = 1
max = 4
'''
OBJECTIVE = '''\
def evaluate(program, ctx):
    return float(program["n"])
'''


def _start(args: list[str], cwd: Path, plain: bool) -> subprocess.CompletedProcess[str]:
    proc = _spawn(args, cwd) if not plain else subprocess.Popen(
        [sys.executable, "-m", "deepphoenix", *args], cwd=cwd, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**__import__("os").environ, "DEEPPHOENIX_NO_NAMESPACES": "1"})
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.mark.slow
@pytest.mark.parametrize("plain", [True, False], ids=["no-namespaces", "namespaces"])
def test_a_candidate_that_kills_the_run_is_quarantined_and_the_run_finishes(
        tmp_path: Path, plain: bool) -> None:
    (tmp_path / "m.py").write_text(KILLER)
    (tmp_path / "g.toml").write_text(GRAMMAR)
    (tmp_path / "o.py").write_text(OBJECTIVE)
    run_dir = tmp_path / "run"
    args = ["run", "--source", "m.py", "--grammar", "g.toml", "--objective", "o.py:evaluate",
            "--direction", "maximize", "--proposer", "random", "--episodes", "1",
            "--batches", "2", "--candidates", "3", "--seed", "1", "--run-dir", str(run_dir),
            "--json"]
    codes = [_start(args, tmp_path, plain).returncode]
    while codes[-1] != 0 and len(codes) < 5:
        codes.append(_start(["run", "--run-dir", str(run_dir), "--resume", "--json"],
                            tmp_path, plain).returncode)
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        rows = {json.loads(v)["n"]: (status, stage) for v, status, stage in db.execute(
            "SELECT site_values, status, stage FROM variants")}
    if plain:  # the candidate can see and kill the run: twice, then it is quarantined
        assert codes == [-9, -9, 0], codes
        assert rows[3] == ("failed", "quarantine"), rows
    else:  # in a PID namespace the candidate cannot even find the run
        assert codes == [0], codes
        assert rows[3] == ("scored", ""), rows
    assert all(status == "scored" for n, (status, _) in rows.items() if n != 3), rows
