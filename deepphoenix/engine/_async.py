"""The search loop without batch barriers: ``--strategy async`` and ``--fidelity asha``.

::

    for episode in 1..E:
        drain; proposer.begin_episode(best)       # the learned proposer trains here
        until B x C candidates are proposed (or --time-limit) and nothing runs:
            whenever a worker is free:
                promote a candidate (asha: top 1/eta of its rung, highest rung first)
                or propose ONE candidate from tournament(top C scored), told what runs
            whenever an evaluation finishes: record it, tell the proposer

An episode is B x C proposals, the same count as a greedy episode, so the two compare at
equal evaluations and the learned proposer still trains once per episode; the episode
boundary is the one place the loop waits for every running evaluation (the training stage
needs the workers' cores). ``--strategy greedy`` or ``best-of-n`` with ``--fidelity asha``
keeps its batches (C candidates from one parent, the best kept), and inside a batch the
candidates climb the rungs asynchronously; only full evaluations can become the best.

Every evaluation is a row of the ``rungs`` table: ``running`` from its start, then its
result, committed as it arrives. Resuming rebuilds everything from the database: the
proposer is told every finished rung result in the order they finished, an evaluation
still ``running`` (interrupted) is run again from scratch, a proposed candidate that
never started starts, and no finished evaluation runs twice. With one worker the order
of events is fixed, so a fixed seed gives the same run, resumed or not; with several
workers the order results arrive in depends on timing, and so does the run.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from deepphoenix.engine._events import (
    BatchDone,
    EpisodeDone,
    NewBest,
    Promoted,
    Proposed,
    Restarted,
    RungEvaluated,
    TimeLimit,
)
from deepphoenix.engine._fidelity import RungResult, promotable
from deepphoenix.engine._loop import SearchLoop
from deepphoenix.engine._quarantine import DEATHS_BEFORE_QUARANTINE, QUARANTINED
from deepphoenix.engine._rundir import RunDir, derive_seed
from deepphoenix.engine._strategy import Async, Scored, Strategy, best_of
from deepphoenix.evaluator import Checker, EvalResult, EvalStatus, Evaluator
from deepphoenix.outcome import Outcome
from deepphoenix.proposers import Observation, Proposer
from deepphoenix.status import RungStatus, VariantStatus
from deepphoenix.store import RungRow

__all__ = ["AsyncLoop"]


class AsyncLoop(SearchLoop):
    """Evaluations started one at a time, whenever a worker frees (see the module)."""

    def __init__(self, run: RunDir, proposer: Proposer, evaluator: Evaluator,
                 strategy: Strategy, emit: Callable[..., None],
                 checker: Checker | None = None) -> None:
        super().__init__(run, proposer, evaluator, strategy, emit, checker)
        c = self.config
        rungs = c.rungs()
        self.resources: list[int | None] = list(rungs) if rungs is not None else [None]
        self.top = len(self.resources) - 1
        self.unit = self.run.objective.unit
        self.running: dict[Future[EvalResult], tuple[str, int, int]] = {}
        self.results: list[RungResult] = []
        self.started: set[tuple[str, int]] = set()
        self.parents: dict[str, str] = {}
        self.deadline = (time.monotonic() + c.time_limit if c.time_limit is not None
                         else None)
        self.stopped = ""  # why the run ended before its budget (the time limit)
        self.full: dict[str, float | None] | None = None  # see _scored
        self.values: dict[str, dict[str, Any]] = {}  # see _values

    # -- state from the database ---------------------------------------------------------
    def _load(self) -> list[RungRow]:
        for attempt in self.store.attempts():
            if attempt.child is not None:
                self.parents.setdefault(attempt.child, attempt.parent)
        rows = self.store.rungs()
        for row in rows:
            self.started.add((row["hash"], row["rung"]))
            if row["status"] != RungStatus.RUNNING:
                self.results.append(RungResult(row["hash"], row["rung"], row["score"]))
        return rows

    def _observation(self, hash_: str, rung: int, status: str,
                     score: float | None) -> Observation | None:
        row = self.store.variant(hash_)
        if row is None:
            return None
        parent = self.parents.get(hash_, self.run.seed_program.hash)
        violation = self._violation(row)
        if status == EvalStatus.SCORED.value and rung < self.top:
            return Observation(parent, hash_, row.values, VariantStatus.PRUNED, None, rung, score,
                               violation)
        return Observation(parent, hash_, row.values, status,
                           score if status == EvalStatus.SCORED.value else None,
                           rung if self.resources[rung] is not None else None, score,
                           violation)

    def _history(self, rows: list[RungRow]) -> list[tuple[float, Observation]]:
        """Every result the proposer was told before this start, with when: each finished
        rung, and each candidate a check blocked in a finished batch (a batch still open
        replays its own when it is settled again)."""
        found = [(float(row["finished_at"]), o) for row in rows
                 if row["status"] != RungStatus.RUNNING
                 for o in [self._observation(row["hash"], row["rung"], row["status"],
                                             row["score"])] if o is not None]
        finished = {(b["episode"], b["batch"]) for b in self.store.batches()
                    if b["finished_at"] is not None}
        for when, hash_, episode, batch in self.store.blocked():
            row = self.store.variant(hash_)
            if (episode, batch) in finished and row is not None:
                found.append((when, self._seen(self.parents.get(
                    hash_, self.run.seed_program.hash), row)))
        return found

    def _best(self) -> str:
        """The best full evaluation so far (the seed on ties: the earliest stays)."""
        best = Scored(self.run.seed_program.hash, self.score(self.run.seed_program.hash))
        return best_of(best, self._scored(), self.direction).hash

    def _scored(self) -> list[Scored]:
        """Every full evaluation's score, in the order they were recorded. Kept in memory
        (read once from the database), so a run of thousands of evaluations does not
        read every variant back for each new candidate."""
        if self.full is None:
            self.full = {v.hash: v.score for v in self.store.variants()
                         if v.status == VariantStatus.SCORED and v.score is not None}
        return [Scored(h, s) for h, s in self.full.items()]

    def _time_up(self) -> bool:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            if not self.stopped:
                self.stopped = f"time limit of {self.config.time_limit:g} s"
                self.emit(TimeLimit(seconds=self.config.time_limit))
            return True
        return False

    # -- the loop ------------------------------------------------------------------------
    def execute(self) -> str:
        try:
            return self._execute()
        finally:
            for future in self.running:
                future.cancel()

    def _execute(self) -> str:
        c = self.config
        self._evaluate_seed()
        rows = self._load()
        history = [o for _, o in sorted(self._history(rows), key=lambda item: item[0])]
        if history:
            self.proposer.observe(history)
        steady = isinstance(self.strategy, Async)
        best = self.run.seed_program.hash
        for episode in range(1, c.episodes + 1):
            record = self.store.episode(episode)
            if record is not None and record["finished_at"] is not None:
                best = record["best"]
                continue
            if steady:
                best = self._best()
            elif record is not None:
                best = record["source_hash"]
            if self._time_up():
                break
            self._begin_episode(episode, best, record)
            self._restart_interrupted(episode)
            if steady:
                self._steady(episode)
                best = self._best()
            else:
                for batch in range(1, c.batches + 1):
                    best = self._batch_asha(episode, batch, best)
            if self.stopped:
                break
            self.store.finish_episode(episode, best)
            self.emit(EpisodeDone(episode=episode, best=best, score=self.score(best)))
        return self._best() if steady else best

    def _restart_interrupted(self, episode: int) -> None:
        """Evaluations a killed run left `running`: each runs again, from scratch."""
        for row in self.store.rungs():
            if row["status"] == RungStatus.RUNNING:
                self._start(row["hash"], row["rung"], episode, again=True)

    def _steady(self, episode: int) -> None:
        c = self.config
        steps = c.batches * c.candidates
        proposed = {a.batch for a in self.store.attempts() if a.episode == episode}
        step = len(proposed)
        # A step a killed run left open (its candidate drawn, not yet checked or redrawn)
        # is settled first, as it would have been; then proposed candidates a killed run
        # never started start now.
        for open_step in sorted(proposed):
            record = self.store.batch(episode, open_step)
            if record is not None and record["finished_at"] is None:
                self._settle(episode, open_step, record["parent"], record["seed"], 1,
                             warn=False)
                self.store.finish_batch(episode, open_step, record["parent"])
        for attempt in self.store.attempts():
            if attempt.episode == episode:
                self._start_new(attempt.child, attempt.outcome, episode)
        while True:
            while len(self.running) < c.workers:
                if self._promote(episode, None):
                    continue
                if step < steps and not self._time_up():
                    step += 1
                    self._propose_one(episode, step)
                    continue
                break
            if not self.running:
                return
            self._wait(episode)

    def _start_new(self, child: str | None, outcome: str, episode: int) -> None:
        if child is None or outcome != Outcome.OK.value or (child, 0) in self.started:
            return
        row = self.store.variant(child)
        if row is not None and not row.done:
            self._start(child, 0, episode)

    def _propose_one(self, episode: int, step: int) -> None:
        c = self.config
        pool = self._scored()
        rng = random.Random(derive_seed(c.seed, "parent", episode, step))
        parent = Async.tournament(pool, c.candidates, self.direction, rng)
        seed = derive_seed(c.seed, "propose", episode, step)
        self.store.start_batch(episode, step, parent, seed)
        self.proposer.pending([self._values(h) for h in self._running_hashes()])
        plan = self._settle(episode, step, parent, seed, 1, warn=False)
        self.emit(Proposed(episode=episode, batch=step, outcomes=plan.outcomes))
        for child in plan.valid:
            self.parents.setdefault(child, parent)
            self._start_new(child, Outcome.OK.value, episode)
        self.store.finish_batch(episode, step, parent)

    def _values(self, hash_: str) -> dict[str, Any]:
        """A variant's site values: read once (a variant's values never change), since
        every proposal passes those of all W running candidates to the proposer."""
        found = self.values.get(hash_)
        if found is None:
            row = self.store.variant(hash_)
            found = self.values[hash_] = dict(row.values) if row is not None else {}
        return dict(found)

    def _batch_asha(self, episode: int, batch: int, best: str) -> str:
        """A greedy (or best-of-n) batch whose candidates climb the rungs."""
        record = self.store.batch(episode, batch)
        if record is not None and record["finished_at"] is not None:
            return str(record["best"])
        parent, plan = self._open_batch(episode, batch, best)
        members = set(plan.valid)
        for child in plan.valid:
            self.parents.setdefault(child, parent)
            self._start_new(child, Outcome.OK.value, episode)
        while True:
            while len(self.running) < self.config.workers and self._promote(episode, members):
                pass
            if not self.running:
                break
            self._wait(episode)
        chosen = self.strategy.select(
            Scored(best, self.score(best)),
            [Scored(h, self.score(h)) for h in dict.fromkeys(plan.valid)], self.direction)
        self.store.finish_batch(episode, batch, chosen.hash)
        self.emit(BatchDone(episode=episode, batch=batch, best=chosen.hash,
                            score=chosen.score, improved=chosen.hash != best))
        return chosen.hash

    # -- evaluations ---------------------------------------------------------------------
    def _promote(self, episode: int, allowed: set[str] | None) -> bool:
        if self.top == 0:
            return False
        found = promotable(self.results, {(h, r - 1) for h, r in self.started if r > 0},
                           self.config.eta, self.direction, self.top, allowed)
        if found is None:
            return False
        hash_, rung = found
        with self.store.transaction():
            self.store.set_promoted(hash_, rung + 1)
        self.emit(Promoted(episode=episode, hash=hash_, rung=rung + 1,
                           resource=self.resources[rung + 1]))
        self._start(hash_, rung + 1, episode)
        return True

    def _start(self, hash_: str, rung: int, episode: int, again: bool = False) -> None:
        if any(h == hash_ and r == rung for h, r, _e in self.running.values()):
            return
        deaths = self.quarantine.deaths(hash_)
        if deaths:  # the run died while it was evaluated: alone now (see _quarantine)
            while self.running:
                self._wait(episode)
        resource = self.resources[rung]
        with self.store.transaction():
            self.store.start_rung(hash_, rung, resource if resource is not None
                                  else self.config.fidelity_budget()[0], episode)
            if deaths < DEATHS_BEFORE_QUARANTINE:
                self.quarantine.set_in_flight([*self._running_hashes(), hash_])
        self.started.add((hash_, rung))
        if deaths >= DEATHS_BEFORE_QUARANTINE:
            self._record_result(EvalResult(hash_, EvalStatus.FAILED, stage="quarantine",
                                           reason=QUARANTINED), rung, episode)
            return
        future = self.evaluator.submit(hash_, self._source(hash_),
                                       resource if self.top else None)
        self.running[future] = (hash_, rung, episode)
        if again:
            self.emit(Restarted(hash=hash_, rung=rung))
        if deaths:
            while self.running:
                self._wait(episode)

    def _running_hashes(self) -> list[str]:
        return [h for h, _rung, _episode in self.running.values()]

    def _wait(self, episode: int) -> None:
        done, _ = wait(list(self.running), return_when=FIRST_COMPLETED)
        for future in sorted(done, key=lambda f: self.running[f][0]):
            _hash, rung, _started_in = self.running.pop(future)
            self._record_result(future.result(), rung, episode)

    def _record_result(self, result: EvalResult, rung: int, episode: int) -> None:
        resource = self.resources[rung]
        with self.store.transaction():
            self.quarantine.set_in_flight(self._running_hashes())
            self.store.finish_rung(result, rung)
            if result.status is EvalStatus.SCORED and rung < self.top:
                self.store.set_pruned(result.hash, rung, resource or 0, result.score,
                                      self.unit)
            else:
                self.store.record_evaluation(result)
        score = result.score if result.status is EvalStatus.SCORED else None
        self.results.append(RungResult(result.hash, rung, score))
        if rung == self.top and score is not None and self.full is not None:
            self.full[result.hash] = score
        observation = self._observation(result.hash, rung, result.status.value, score)
        if observation is not None:
            self.proposer.observe([observation])
        if rung == self.top and score is not None and isinstance(self.strategy, Async):
            best = self._best()
            if best == result.hash:
                self.emit(NewBest(episode=episode, best=best, score=score))
        status, stage, reason = result.status.value, result.stage, result.reason
        if result.status is EvalStatus.SCORED and rung < self.top:
            status, stage = VariantStatus.PRUNED, f"rung {rung}"
            reason = f"{resource} {self.unit}: score {result.score:.4g} (for now)"
        self.emit(RungEvaluated(episode=episode, batch=0, hash=result.hash,
                                status=VariantStatus(status), stage=stage, reason=reason,
                                score=result.score, params=result.metrics.get("params"),
                                seconds=result.metrics.get("wall_seconds"),
                                done=self.store.evaluations_done(), rung=rung,
                                resource=resource, rungs=self.top + 1))

