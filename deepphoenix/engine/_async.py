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

The decisions (rungs, promotion, the budget, parents, the best) are a `Scheduler`'s
(`_scheduler`); this module drives one: fill the free workers (a promotion first, else a
proposal while the budget lasts), wait for a result, tell the scheduler, record it.
`SteadyLoop` is ``--strategy async``, `RungBatchLoop` a batch strategy with rungs, and
`make_loop` chooses once, from the strategy object (`Strategy.steady`) and the rungs.

Every evaluation is a row of the ``rungs`` table: ``running`` from its start, then its
result, committed as it arrives. Resuming rebuilds everything from the database: the
proposer is told every finished rung result in the order they finished, an evaluation
still ``running`` (interrupted) is run again from scratch, a proposed candidate that
never started starts, and no finished evaluation runs twice. With one worker the order
of events is fixed, so a fixed seed gives the same run, resumed or not; with several
workers the order results arrive in depends on timing, and so does the run.
"""

from __future__ import annotations

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
from deepphoenix.engine._loop import SearchLoop
from deepphoenix.engine._quarantine import DEATHS_BEFORE_QUARANTINE, QUARANTINED
from deepphoenix.engine._rundir import RunDir, derive_seed
from deepphoenix.engine._scheduler import Scheduler, SteadyScheduler
from deepphoenix.engine._strategy import Scored, Strategy
from deepphoenix.evaluator import Checker, EvalResult, EvalStatus, Evaluator
from deepphoenix.outcome import Outcome
from deepphoenix.proposers import Observation, Proposer
from deepphoenix.status import RungStatus, VariantStatus
from deepphoenix.store import RungRow

__all__ = ["AsyncLoop", "RungBatchLoop", "SteadyLoop", "make_loop"]


def make_loop(run: RunDir, proposer: Proposer, evaluator: Evaluator, strategy: Strategy,
              emit: Callable[..., None], checker: Checker | None = None) -> SearchLoop:
    """The loop a run needs, chosen once: without batch barriers when the strategy says so
    (`Strategy.steady`), batches whose candidates climb rungs when the run has rungs, else
    the batch loop."""
    if strategy.steady:
        return SteadyLoop(run, proposer, evaluator, strategy, emit, checker)
    if run.config.rungs() is not None:
        return RungBatchLoop(run, proposer, evaluator, strategy, emit, checker)
    return SearchLoop(run, proposer, evaluator, strategy, emit, checker)


class AsyncLoop(SearchLoop):
    """Evaluations started one at a time, whenever a worker frees (see the module): the
    driver of a `Scheduler`. It reuses the batch loop's own steps (the seed, an episode's
    start, drawing, checking and recording candidates) and replaces how they are run;
    a subclass says what an episode is (`_episode`)."""

    scheduler: Scheduler

    def __init__(self, run: RunDir, proposer: Proposer, evaluator: Evaluator,
                 strategy: Strategy, emit: Callable[..., None],
                 checker: Checker | None = None) -> None:
        super().__init__(run, proposer, evaluator, strategy, emit, checker)
        self.scheduler = self._scheduler()
        self.running: dict[Future[EvalResult], tuple[str, int]] = {}  # (hash, rung)
        self.parents: dict[str, str] = {}  # child -> the parent it was proposed from
        self.values: dict[str, dict[str, Any]] = {}  # see _values

    def _scheduler(self) -> Scheduler:
        return Scheduler.for_run(self.config, self.run.objective)

    def _episode(self, episode: int, best: str) -> str:
        """Run episode `episode` from `best`; the best at its end."""
        raise NotImplementedError

    # -- state from the database -------------------------------------------------------------
    def _load(self) -> list[RungRow]:
        for attempt in self.store.attempts():
            if attempt.child is not None:
                self.parents.setdefault(attempt.child, attempt.parent)
        rows = self.store.rungs()
        for row in rows:
            self.scheduler.start(row["hash"], row["rung"])
            if row["status"] != RungStatus.RUNNING:
                self.scheduler.finish(row["hash"], row["rung"], row["score"])
        return rows

    def _observation(self, hash_: str, rung: int, status: str,
                     score: float | None) -> Observation | None:
        row = self.store.variant(hash_)
        if row is None:
            return None
        parent = self.parents.get(hash_, self.run.seed_program.hash)
        violation = self._violation(row)
        if self.scheduler.stops_early(rung, status == EvalStatus.SCORED.value):
            return Observation(parent, hash_, row.values, VariantStatus.PRUNED, None, rung, score,
                               violation)
        return Observation(parent, hash_, row.values, status,
                           score if status == EvalStatus.SCORED.value else None,
                           self.scheduler.rung_of(rung), score, violation)

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

    def _time_up(self) -> bool:
        said = bool(self.scheduler.stopped)
        if not self.scheduler.time_up():
            return False
        if not said:
            self.emit(TimeLimit(seconds=self.config.time_limit))
        return True

    # -- the loop ----------------------------------------------------------------------------
    def execute(self) -> str:
        try:
            return self._execute()
        finally:
            for future in self.running:
                future.cancel()

    def _execute(self) -> str:
        self._evaluate_seed()
        rows = self._load()
        history = [o for _, o in sorted(self._history(rows), key=lambda item: item[0])]
        if history:
            self.proposer.observe(history)
        best = self.run.seed_program.hash
        for episode in range(1, self.config.episodes + 1):
            record = self.store.episode(episode)
            if record is not None and record["finished_at"] is not None:
                best = record["best"]
                continue
            best = self.scheduler.best(record["source_hash"] if record is not None else best)
            if self._time_up():
                break
            self._begin_episode(episode, best, record)
            self._restart_interrupted(episode)
            best = self._episode(episode, best)
            if self.scheduler.stopped:
                break
            self.store.finish_episode(episode, best)
            self.emit(EpisodeDone(episode=episode, best=best, score=self.score(best)))
        return self.scheduler.best(best)

    def _restart_interrupted(self, episode: int) -> None:
        """Evaluations a killed run left `running`: each runs again, from scratch."""
        for row in self.store.rungs():
            if row["status"] == RungStatus.RUNNING:
                self._start(row["hash"], row["rung"], episode, again=True)

    def _drain(self, episode: int, allowed: set[str] | None = None,
               propose: Callable[[], bool] = lambda: False) -> None:
        """Until nothing runs: fill every free worker (a promotion first, else `propose`
        one new candidate, when it may), then wait for a result."""
        while True:
            while len(self.running) < self.config.workers:
                if not self._promote(episode, allowed) and not propose():
                    break
            if not self.running:
                return
            self._wait(episode)

    def _start_new(self, child: str | None, outcome: str, episode: int) -> None:
        if (child is None or outcome != Outcome.OK.value
                or (child, 0) in self.scheduler.started):
            return
        row = self.store.variant(child)
        if row is not None and not row.done:
            self._start(child, 0, episode)

    def _values(self, hash_: str) -> dict[str, Any]:
        """A variant's site values: read once (a variant's values never change), since
        every proposal passes those of all W running candidates to the proposer."""
        found = self.values.get(hash_)
        if found is None:
            row = self.store.variant(hash_)
            found = self.values[hash_] = dict(row.values) if row is not None else {}
        return dict(found)

    # -- evaluations -------------------------------------------------------------------------
    def _promote(self, episode: int, allowed: set[str] | None) -> bool:
        found = self.scheduler.promotion(allowed)
        if found is None:
            return False
        hash_, rung = found
        with self.store.transaction():
            self.store.set_promoted(hash_, rung)
        self.emit(Promoted(episode=episode, hash=hash_, rung=rung,
                           resource=self.scheduler.resources[rung]))
        self._start(hash_, rung, episode)
        return True

    def _start(self, hash_: str, rung: int, episode: int, again: bool = False) -> None:
        if (hash_, rung) in self.running.values():
            return
        deaths = self.quarantine.deaths(hash_)
        if deaths:  # the run died while it was evaluated: alone now (see _quarantine)
            while self.running:
                self._wait(episode)
        resource = self.scheduler.resources[rung]
        with self.store.transaction():
            self.store.start_rung(hash_, rung, resource if resource is not None
                                  else self.config.fidelity_budget()[0], episode)
            if deaths < DEATHS_BEFORE_QUARANTINE:
                self.quarantine.set_in_flight([*self._running_hashes(), hash_])
        self.scheduler.start(hash_, rung)
        if deaths >= DEATHS_BEFORE_QUARANTINE:
            self._record_result(EvalResult(hash_, EvalStatus.FAILED, stage="quarantine",
                                           reason=QUARANTINED), rung, episode)
            return
        future = self.evaluator.submit(hash_, self._source(hash_), resource)
        self.running[future] = (hash_, rung)
        if again:
            self.emit(Restarted(hash=hash_, rung=rung))
        if deaths:
            while self.running:
                self._wait(episode)

    def _running_hashes(self) -> list[str]:
        return [h for h, _rung in self.running.values()]

    def _wait(self, episode: int) -> None:
        done, _ = wait(list(self.running), return_when=FIRST_COMPLETED)
        for future in sorted(done, key=lambda f: self.running[f][0]):
            _hash, rung = self.running.pop(future)
            self._record_result(future.result(), rung, episode)

    def _record_result(self, result: EvalResult, rung: int, episode: int) -> None:
        scored = result.status is EvalStatus.SCORED
        stopped = self.scheduler.stops_early(rung, scored)
        resource = self.scheduler.resources[rung]
        with self.store.transaction():
            self.quarantine.set_in_flight(self._running_hashes())
            self.store.finish_rung(result, rung)
            if stopped:
                self.store.set_pruned(result.hash, rung, resource or 0, result.score,
                                      self.scheduler.unit)
            else:
                self.store.record_evaluation(result)
        score = result.score if scored else None
        new_best = self.scheduler.finish(result.hash, rung, score)
        observation = self._observation(result.hash, rung, result.status.value, score)
        if observation is not None:
            self.proposer.observe([observation])
        if new_best and score is not None:  # a new best is a full score
            self.emit(NewBest(episode=episode, best=result.hash, score=score))
        status, stage, reason = result.status.value, result.stage, result.reason
        if stopped and result.score is not None:
            status, stage = VariantStatus.PRUNED, f"rung {rung}"
            reason = self.scheduler.stop_reason(rung, result.score)
        self.emit(RungEvaluated(episode=episode, batch=0, hash=result.hash,
                                status=VariantStatus(status), stage=stage, reason=reason,
                                score=result.score, params=result.metrics.get("params"),
                                seconds=result.metrics.get("wall_seconds"),
                                done=self.store.evaluations_done(), rung=rung,
                                resource=resource, rungs=self.scheduler.top + 1))


class SteadyLoop(AsyncLoop):
    """``--strategy async``: an episode is B x C proposals, one at a time, each whenever a
    worker is free and no promotion waits (`SteadyScheduler`)."""

    scheduler: SteadyScheduler

    def _scheduler(self) -> SteadyScheduler:
        return SteadyScheduler.for_run(self.config, self.run.objective)

    def _load(self) -> list[RungRow]:
        rows = super()._load()
        seed = self.run.seed_program.hash
        self.scheduler.know(Scored(seed, self.score(seed)),
                            [Scored(v.hash, v.score) for v in self.store.variants()
                             if v.status == VariantStatus.SCORED])
        return rows

    def _episode(self, episode: int, best: str) -> str:
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

        def propose() -> bool:
            nonlocal step
            if not self.scheduler.proposals_left(step) or self._time_up():
                return False
            step += 1
            self._propose_one(episode, step)
            return True

        self._drain(episode, propose=propose)
        return self.scheduler.best(best)

    def _propose_one(self, episode: int, step: int) -> None:
        parent = self.scheduler.parent(episode, step)
        seed = derive_seed(self.config.seed, "propose", episode, step)
        self.store.start_batch(episode, step, parent, seed)
        self.proposer.pending([self._values(h) for h in self._running_hashes()])
        plan = self._settle(episode, step, parent, seed, 1, warn=False)
        self.emit(Proposed(episode=episode, batch=step, outcomes=plan.outcomes))
        for child in plan.valid:
            self.parents.setdefault(child, parent)
            self._start_new(child, Outcome.OK.value, episode)
        self.store.finish_batch(episode, step, parent)


class RungBatchLoop(AsyncLoop):
    """A greedy (or best-of-n) run with rungs: its batches as the batch loop has them (C
    candidates from the strategy's parent, the strategy's choice kept), and inside a batch
    its candidates climb the rungs asynchronously."""

    def _episode(self, episode: int, best: str) -> str:
        for batch in range(1, self.config.batches + 1):
            best = self._batch(episode, batch, best)
        return best

    def _batch(self, episode: int, batch: int, best: str) -> str:
        record = self.store.batch(episode, batch)
        if record is not None and record["finished_at"] is not None:
            return str(record["best"])
        parent, plan = self._open_batch(episode, batch, best)
        for child in plan.valid:
            self.parents.setdefault(child, parent)
            self._start_new(child, Outcome.OK.value, episode)
        self._drain(episode, allowed=set(plan.valid))
        chosen = self.strategy.select(
            Scored(best, self.score(best)),
            [Scored(h, self.score(h)) for h in dict.fromkeys(plan.valid)], self.direction)
        self.store.finish_batch(episode, batch, chosen.hash)
        self.emit(BatchDone(episode=episode, batch=batch, best=chosen.hash,
                            score=chosen.score, improved=chosen.hash != best))
        return chosen.hash
