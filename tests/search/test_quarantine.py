"""A candidate that kills the run: counted when the run restarts, tried alone, and after a
second death recorded as failed instead of a third try; the resumed run finishes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from concurrent.futures import Future
from pathlib import Path
from typing import Any, ClassVar

import pytest

from deepphoenix.engine import Run, preset
from deepphoenix.engine._quarantine import QUARANTINED, Quarantine
from deepphoenix.evaluator import EvalStatus
from deepphoenix.executor import Executor
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


class _Death(BaseException):
    """The run's process dying, as far as the loop can tell: nothing after it runs."""


class _DyingExecutor(Executor):
    """The local executor, whose `submit` kills "the run" at the submission numbers in
    `DIES_AT` (counted over the executor's life): the jobs started before it are left in
    flight, as when a candidate kills the process that runs the search. The answers of
    the submissions in `HOLD` reach the loop only once a later job is submitted, so which
    jobs are in flight at a death does not depend on how fast this machine is."""

    name = "dying"
    DIES_AT: ClassVar[set[int]] = set()
    HOLD: ClassVar[set[int]] = set()
    LAST: ClassVar[_DyingExecutor | None] = None

    def __init__(self, settings: Any) -> None:
        from deepphoenix.executor import LocalExecutor

        super().__init__(settings)
        self.inner = LocalExecutor(settings)
        self.count = 0
        self.futures: list[Any] = []
        self.busy: list[int] = []  # jobs running when each job was submitted
        self.held: list[tuple[Any, Future[Any]]] = []  # (inner future, what the loop sees)

    def submit(self, job: Any, on_progress: Any = None) -> Any:
        self.count += 1
        self.busy.append(sum(1 for f in self.futures if not f.done()))
        _DyingExecutor.LAST = self
        for inner, seen in self.held:
            inner.add_done_callback(lambda f, seen=seen: _copy_future(f, seen))
        self.held.clear()
        if self.count in self.DIES_AT:
            raise _Death(job[0])
        future = self.inner.submit(job, on_progress)
        if self.count in self.HOLD:
            outer: Future[Any] = Future()
            self.held.append((future, outer))
            future = outer
        self.futures.append(future)
        return future

    def run_all(self, jobs: Any, on_progress: Any = None) -> Any:
        return self.inner.run_all(jobs, on_progress=on_progress)

    def lane(self, name: str) -> Any:
        return self.inner.lane(name)

    def close(self) -> None:
        self.inner.close()
        super().close()


def _copy_future(source: Future[Any], target: Future[Any]) -> None:
    error = source.exception()
    if error is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())


def test_async_runs_quarantine_too(tmp_path: Path) -> None:
    from deepphoenix.engine import RunConfig
    from deepphoenix.executor import EXECUTORS
    from tests.search import synthetic

    EXECUTORS.register("dying", _DyingExecutor)
    synthetic.write(tmp_path, steps=3, pause=0.2)
    config = RunConfig(
        seed_source=str(tmp_path / "prog.py"), grammar=str(tmp_path / "g.toml"),
        objective=f"{tmp_path / 'score.py'}:evaluate", proposer="random", episodes=1,
        batches=2, candidates=3, timeout=60.0, strategy="async", workers=2,
        executor="dying")
    run_dir = tmp_path / "run"

    def start(dies_at: set[int], resume: bool, hold: frozenset[int] = frozenset()) -> Run:
        _DyingExecutor.DIES_AT = dies_at
        _DyingExecutor.HOLD = set(hold)
        return Run(run_dir, None if resume else config, resume=resume)

    # 1: the seed goes through run_all; two candidates start, the first ends (the second's
    # answer is held back), the third starts and kills the run: two are left in flight
    run = start({3}, resume=False, hold=frozenset({2}))
    with pytest.raises(_Death):
        run.execute()
    in_flight = [r["hash"] for r in run.store.rungs() if r["status"] == "running"]
    run.close()
    assert len(in_flight) == 2
    # 2: the two suspects run alone, one after the other; the second kills the run again
    run = start({2}, resume=True)
    with pytest.raises(_Death):
        run.execute()
    rows = {r["hash"]: r for r in run.store.rungs()}
    run.close()
    survivor, killer = in_flight
    assert rows[survivor]["status"] == "scored" and rows[killer]["status"] == "running"
    assert _DyingExecutor.LAST is not None and _DyingExecutor.LAST.busy == [0, 0]  # alone
    # 3: the candidate in flight at both deaths is failed, not tried a third time, and
    # the run finishes
    run = start(set(), resume=True)
    try:
        run.execute()
        rows_after = run.store.rungs()
        killed = run.store.variant(killer)
    finally:
        run.close()
    assert killed is not None and (killed.status, killed.stage) == ("failed", "quarantine")
    assert killed.reason == QUARANTINED
    assert {r["status"] for r in rows_after} == {"scored", "failed"}
    assert len(rows_after) == 6  # every proposed candidate ended, none twice
