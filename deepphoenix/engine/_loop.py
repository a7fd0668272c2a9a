"""The search loop (the paper's Algorithm 1) over an open run directory.

::

    for episode in 1..E:
        proposer.begin_episode(best)          # the learned proposer trains here
        for batch in 1..B:
            parent ← strategy.parent(best, seed)
            candidates ← proposer.propose(parent) × C, grounded on the parent
            check each new valid candidate against --max-params / --constraint (a worker
                builds it without weights); while some break one (up to R draws):
                proposer.observe(their rejections); draw again for their slots
            score each new valid candidate that passed (cached by hash)
            proposer.observe(results)
            best ← strategy.select(best, candidates, direction)

Everything is recorded in the run database as it happens. Resuming replays the loop:
finished batches and episodes are read back, a batch whose candidates were already
proposed reuses them, a variant already evaluated is never evaluated again, the proposer
observes every stored result before the first new batch, and every random draw comes
from a seed derived from the run seed and the (episode, batch), so a resumed run ends
where an uninterrupted one would. Checks and redraws are recorded as they happen (the
``checks`` table, attempts with ``redraw_of``) and replayed the same way: a stored draw is
reused, a stored check is not run again, and the proposer is told the rejections in the
order it was told them (a batch's rejections, round by round, before its results).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from deepphoenix.engine._events import (
    BatchDone,
    BatchStarted,
    EpisodeDone,
    EpisodeStarted,
    Evaluated,
    Event,
    Proposed,
    Redrawing,
    Scoring,
    SeedScored,
    Trained,
    Warned,
)
from deepphoenix.engine._quarantine import Quarantine
from deepphoenix.engine._rundir import RunDir, derive_seed
from deepphoenix.engine._strategy import Scored, Strategy
from deepphoenix.errors import DeepPhoenixError, RunDirError
from deepphoenix.evaluator import Checker, CheckResult, EvalResult, Evaluator, Verdict
from deepphoenix.outcome import Outcome
from deepphoenix.proposers import Observation, Proposal, Proposer
from deepphoenix.status import VariantStatus
from deepphoenix.store import AttemptRow, EpisodeRow, RunStore, VariantRow

__all__ = ["CONSTRAINT_STAGE", "Event", "SearchLoop", "unevaluable"]

CONSTRAINT_STAGE = "constraint"  # the stage of a variant a check blocked (never evaluated)


@dataclass(frozen=True, slots=True)
class _Batch:
    """A batch's proposals as the loop needs them: outcome counts and valid children."""

    outcomes: dict[str, int]
    valid: list[str]


class SearchLoop:
    """Episodes of batches over one run directory; returns the best variant's hash."""

    def __init__(self, run: RunDir, proposer: Proposer, evaluator: Evaluator,
                 strategy: Strategy, emit: Callable[[Event], None],
                 checker: Checker | None = None) -> None:
        """`checker`: the run's constraints, checked before a candidate is evaluated (None:
        the run has none, or checks them only when it is evaluated, as runs did before)."""
        self.run = run
        self.store = run.store
        self.config = run.config
        self.proposer = proposer
        self.evaluator = evaluator
        self.strategy = strategy
        self.direction = run.objective.direction
        self.emit = emit
        self.quarantine = Quarantine(self.store)  # counts a death the last start left
        self.checker = checker
        self._warned: set[str] = set()  # constraint errors said once per session

    # -- scores --------------------------------------------------------------------------
    def score(self, hash_: str) -> float | None:
        row = self.store.variant(hash_)
        return None if row is None or row.status != VariantStatus.SCORED else row.score

    def _evaluate(self, hashes: Sequence[str], episode: int, batch: int) -> None:
        pending = []
        for hash_ in dict.fromkeys(hashes):
            row = self.store.variant(hash_)
            if row is None:
                raise RunDirError(f"variant {hash_} is missing from the run database")
            if not row.done:
                pending.append((hash_, row.source))
        self.emit(Scoring(episode=episode, batch=batch, count=len(pending)))
        quarantined, rounds = self.quarantine.rounds(pending)
        for result in quarantined:
            self._store_result(result, episode, batch)
        for jobs in rounds:
            with self.quarantine.in_flight([h for h, _ in jobs]):
                for result in self.evaluator.evaluate(jobs):
                    self._store_result(result, episode, batch)

    def _store_result(self, result: EvalResult, episode: int, batch: int) -> None:
        self.store.record_evaluation(result)
        self.emit(Evaluated(episode=episode, batch=batch, hash=result.hash,
                            status=result.status, stage=result.stage, reason=result.reason,
                            score=result.score, params=result.metrics.get("params"),
                            seconds=result.metrics.get("wall_seconds"),
                            done=self.store.evaluations_done()))

    def _observations(self, episode: int, batch: int, blocked: bool = True,
                      evaluated: bool = True) -> list[Observation]:
        """What the proposer learns from, in the order it was told: a batch's candidates
        that a check blocked (round by round: they were told before the batch's next
        draw), then each evaluated child, once, in the order the batch recorded them."""
        seen: set[str] = set()
        first: list[Observation] = []
        then: list[Observation] = []
        for attempt in self.store.attempts(episode, batch):
            child = attempt.child
            if child is None or child in seen or attempt.outcome != Outcome.OK.value:
                continue
            row = self.store.variant(child)
            if row is None or not row.done:
                continue
            seen.add(child)
            was_blocked = _blocked(row)
            if (blocked and was_blocked) or (evaluated and not was_blocked):
                (first if was_blocked else then).append(self._seen(attempt.parent, row))
        return first + then

    def _seen(self, parent: str, row: VariantRow) -> Observation:
        """The observation of a recorded variant (its status, score and violation)."""
        return Observation(parent, row.hash, row.values, row.status,
                           row.score if row.status == VariantStatus.SCORED else None,
                           violation=self._violation(row))

    def _violation(self, row: VariantRow) -> float | None:
        """How far past the run's constraints a variant is (`Observation.violation`);
        None for a run without checks."""
        if self.checker is None:
            return None
        rules = self.checker.settings
        check = self.store.check(row.hash)
        params = check.params if check is not None and check.params is not None else (
            row.metrics.get("params"))
        terms = []
        if rules.max_params is not None and isinstance(params, int) and params > 0:
            terms.append(math.log(params / rules.max_params))
        if rules.constraint is not None:
            broke = check is not None and check.blocks and check.rule != "max-params"
            terms.append(1.0 if broke else -1.0)
        return max(terms) if terms else None

    # -- the loop ------------------------------------------------------------------------
    def _evaluate_seed(self) -> str:
        """Score the seed (once; a resume reads it back); raise if it fails."""
        seed = self.run.seed_program
        with self.store.transaction():
            self.store.add_variant(seed.hash, seed.text, seed.values, 0)
        if self.checker is not None and self.store.check(seed.hash) is None:
            (checked,) = self.checker.check([(seed.hash, seed.text, seed.values)])
            with self.store.transaction():
                self.store.record_check(checked)
        self._evaluate([seed.hash], 0, 0)
        seed_row = self.store.variant(seed.hash)
        assert seed_row is not None
        if _blocked(seed_row):
            raise DeepPhoenixError(f"the seed itself breaks the run's constraints: "
                                   f"{seed_row.reason}; the search starts from the seed, so "
                                   "loosen --max-params or --constraint, or start from "
                                   "another seed")
        if seed_row.status != VariantStatus.SCORED:
            raise DeepPhoenixError(f"the seed itself fails at the {seed_row.stage} stage: "
                                   f"{seed_row.reason}")
        self.emit(SeedScored(hash=seed.hash, score=seed_row.score,
                             params=seed_row.metrics.get("params")))
        return seed.hash

    def execute(self) -> str:
        c = self.config
        seed = self.run.seed_program
        self._evaluate_seed()
        # The proposer's state is rebuilt from the database: every finished batch's
        # results, in order (an unfinished batch is observed when it finishes).
        finished = [(b.episode, b.batch) for b in self.store.batches()
                    if b.finished_at is not None]
        history = [o for e, b in finished for o in self._observations(e, b)]
        if history:
            self.proposer.observe(history)
        best = seed.hash
        for episode in range(1, c.episodes + 1):
            record = self.store.episode(episode)
            if record is not None and record.finished_at is not None:
                best = str(record.best)
                continue
            if record is not None:
                best = record.source_hash
            self._begin_episode(episode, best, record)
            for batch in range(1, c.batches + 1):
                best = self._batch(episode, batch, best)
            self.store.finish_episode(episode, best)
            self.emit(EpisodeDone(episode=episode, best=best, score=self.score(best)))
        return best

    def _begin_episode(self, episode: int, best: str, record: EpisodeRow | None) -> None:
        train_seed = derive_seed(self.config.seed, "train", episode)
        self.store.start_episode(episode, best, train_seed)
        program = self.run.parse(self._source(best))
        self.emit(EpisodeStarted(episode=episode, episodes=self.config.episodes, source=best,
                                 score=self.score(best)))
        stored = (record.training if record is not None
                  and record.trained_at is not None else None)
        report = self.proposer.begin_episode(episode, program, train_seed, stored)
        if report is not None and stored is None:
            self.store.record_training(episode, report)
            if "steps" in report:  # a stage ran (not failed, not reused)
                self.emit(Trained(episode=episode, steps=report["steps"],
                                  final_loss=report["final_loss"], seconds=report["seconds"],
                                  params=report["params"]))

    def _source(self, hash_: str) -> str:
        row = self.store.variant(hash_)
        if row is None:
            raise RunDirError(f"variant {hash_} is missing from the run database")
        return row.source

    def _batch(self, episode: int, batch: int, best: str) -> str:
        record = self.store.batch(episode, batch)
        if record is not None and record.finished_at is not None:
            return str(record.best)
        _parent, plan = self._open_batch(episode, batch, best)
        self._evaluate(plan.valid, episode, batch)
        self.proposer.observe(self._observations(episode, batch, blocked=False))
        chosen = self.strategy.select(
            Scored(best, self.score(best)),
            [Scored(h, self.score(h)) for h in dict.fromkeys(plan.valid)],
            self.direction,
        )
        self.store.finish_batch(episode, batch, chosen.hash)
        self.emit(BatchDone(episode=episode, batch=batch, best=chosen.hash,
                            score=chosen.score, improved=chosen.hash != best))
        return chosen.hash

    def _open_batch(self, episode: int, batch: int, best: str) -> tuple[str, _Batch]:
        """Start batch `batch` of `episode` from the strategy's parent of `best`: its
        parent and its candidates (those stored, on resume, else newly proposed)."""
        parent = self.strategy.parent(best, self.run.seed_program.hash)
        seed = derive_seed(self.config.seed, "propose", episode, batch)
        self.store.start_batch(episode, batch, parent, seed)
        self.emit(BatchStarted(episode=episode, batch=batch, batches=self.config.batches,
                               parent=parent))
        plan = self._settle(episode, batch, parent, seed, self.config.candidates)
        self.emit(Proposed(episode=episode, batch=batch, outcomes=plan.outcomes))
        return parent, plan

    def _settle(self, episode: int, batch: int, parent: str, seed: int, count: int,
                warn: bool = True) -> _Batch:
        """This batch's candidates: `count` drawn from `parent` (or those an interrupted
        start stored), each valid one checked against the run's constraints before it
        may take an evaluation slot. A slot whose candidate breaks one is drawn again,
        up to `constraint_rounds` draws in all, and the proposer is told each rejection
        before the next draw; a slot still broken after the last is lost (recorded, never
        evaluated). `warn`: say so when nothing of the batch can be evaluated."""
        began = time.monotonic()
        drew = False
        attempts = self.store.attempts(episode, batch)
        if not attempts:
            self._draw(episode, batch, parent, seed, count, [])
            attempts, drew = self.store.attempts(episode, batch), True
        if self.checker is not None:
            current = [a for a in attempts if a.redraw_of is None]
            rounds = self.config.constraint_rounds
            for round_ in range(1, rounds + 1):
                blocked = self._check(current)
                if not blocked:
                    break
                self.proposer.observe([self._seen(a.parent, row) for a, row in blocked])
                if round_ == rounds:
                    break
                slots = [a.slot for a, _ in blocked]
                current = [a for a in attempts if a.redraw_of in slots]
                if not current:
                    self.emit(Redrawing(episode=episode, batch=batch, round=round_,
                                        rounds=rounds, count=len(slots), reasons=unevaluable(
                                            self.store, [a for a, _ in blocked])))
                    self._draw(episode, batch, parent,
                               derive_seed(self.config.seed, "redraw", episode, batch, round_),
                               len(slots), slots)
                    attempts, drew = self.store.attempts(episode, batch), True
                    current = [a for a in attempts if a.redraw_of in slots]
        if drew:
            self.store.set_batch_proposal_time(episode, batch, time.monotonic() - began)
        plan = self._plan(attempts)
        if warn and not plan.valid:
            proposers = ", ".join(dict.fromkeys(a.proposer for a in attempts)) or "-"
            self.emit(Warned(
                f"episode {episode} batch {batch}: none of the {len(attempts)} proposals of "
                f"{proposers} can be evaluated: {unevaluable(self.store, attempts)}"))
        return plan

    def _plan(self, attempts: Sequence[AttemptRow]) -> _Batch:
        """Outcome counts (a candidate a check blocked counts as ``constraint``) and the
        children to evaluate, in slot order."""
        outcomes: Counter[str] = Counter()
        valid = []
        for attempt in attempts:
            outcome = attempt.outcome
            if outcome == Outcome.OK.value and attempt.child:
                row = self.store.variant(attempt.child)
                if row is not None and _blocked(row):
                    outcome = CONSTRAINT_STAGE
                else:
                    valid.append(attempt.child)
            outcomes[outcome] += 1
        return _Batch(dict(outcomes), valid)

    def _check(self, attempts: Sequence[AttemptRow]) -> list[tuple[AttemptRow, VariantRow]]:
        """The attempts whose candidates a check blocks, in slot order, with their rows.
        Valid new candidates not checked yet are checked now (a resume reads the stored
        checks back)."""
        assert self.checker is not None
        candidates = [(a, row) for a in attempts
                      if a.outcome == Outcome.OK.value and a.child is not None
                      for row in [self.store.variant(a.child)] if row is not None]
        todo = {row.hash: row for _, row in candidates
                if row.status == VariantStatus.PENDING and self.store.check(row.hash) is None}
        if todo:
            results = self.checker.check([(h, row.source, row.values)
                                          for h, row in todo.items()])
            with self.store.transaction():
                for result in results:
                    self.store.record_check(result)
            for result in results:
                self._say_error(result)
        found = []
        for attempt, row in candidates:
            if row.hash in todo:
                row = self.store.variant(row.hash) or row
            if _blocked(row):
                found.append((attempt, row))
        return found

    def _say_error(self, result: CheckResult) -> None:
        """A constraint that raised is the user's bug: its candidate is rejected (the
        traceback is stored with it) and the run goes on, but it is said, once."""
        if result.verdict is Verdict.ERROR and result.reason not in self._warned:
            self._warned.add(result.reason)
            self.emit(Warned(
                f"the constraint failed on candidate {result.hash[:8]}: {result.reason}; the "
                "candidate is rejected (its traceback is in the run database: deepphoenix "
                "report shows it)"))

    def _draw(self, episode: int, batch: int, parent: str, seed: int, count: int,
              redraws: Sequence[int]) -> None:
        """Propose `count` candidates from `parent` and record them: new slots, after the
        batch's last; `redraws`: the slots they are drawn again for, in order."""
        parent_program = self.run.parse(self._source(parent))
        # Every slot goes to a variant this run has not met: a repeat would spend an
        # evaluation slot on a cached score (and never win a greedy step).
        proposals = self.proposer.propose(parent_program, count, seed,
                                          self.store.variant_hashes())
        first = max((a.slot for a in self.store.attempts(episode, batch)), default=-1) + 1
        self._record(episode, batch, parent, self.proposer.name, proposals, first,
                     list(redraws))

    def _record(self, episode: int, batch: int, parent: str, proposer: str,
                proposals: list[Proposal], first: int = 0,
                redraws: Sequence[int] = ()) -> None:
        rows = []
        with self.store.transaction():
            for index, proposal in enumerate(proposals):
                slot = first + index
                m = proposal.mutation
                child = m.variant.hash if m.variant is not None else None
                if m.variant is not None and m.outcome in (Outcome.OK, Outcome.OUT_OF_DOMAIN,
                                                           Outcome.INVARIANT):
                    status = VariantStatus.PENDING if m.ok else VariantStatus.REJECTED
                    self.store.add_variant(
                        m.variant.hash, m.variant.source, dict(m.variant.values), episode,
                        status=status, stage="" if m.ok else "static",
                        reason="" if m.ok else f"{m.outcome.value}: {m.reason}")
                if m.outcome is Outcome.NO_OP:
                    child = None
                rows.append({
                    "episode": episode, "batch": batch, "slot": slot, "parent": parent,
                    "child": child, "proposer": proposer, "outcome": m.outcome.value,
                    "reason": m.reason,
                    "edits": [e.to_dict() for e in m.variant.changes] if m.variant else [],
                    "raw_text": proposal.text, "source": proposal.source,
                    "redraw_of": redraws[index] if index < len(redraws) else None,
                })
            self.store.add_attempts(rows)


def _blocked(row: VariantRow) -> bool:
    """Whether a check kept this variant from being evaluated."""
    return row.status == VariantStatus.REJECTED and row.stage == CONSTRAINT_STAGE


def unevaluable(store: RunStore, attempts: Sequence[AttemptRow], limit: int = 3) -> str:
    """Why these proposals could not be evaluated, most frequent first: counts by outcome
    (a check's by rule), each with its most common reason, at most `limit` of them
    (``6 out-of-domain (block_size=116 is outside 64..4096), 2 duplicate (…)``)."""
    reasons: dict[str, Counter[str]] = {}
    for attempt in attempts:
        label, reason = attempt.outcome, attempt.reason
        row = store.variant(attempt.child) if attempt.child else None
        if row is not None and _blocked(row):
            check = store.check(row.hash)
            rule = check.rule if check is not None else ""
            label = "over --max-params" if rule == "max-params" else "broke the constraint"
            reason = "" if rule == "max-params" else row.reason
        elif attempt.outcome == Outcome.OK.value:
            continue  # evaluable (or evaluated)
        reasons.setdefault(label, Counter())[_first_line(reason)] += 1
    ranked = sorted(reasons.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    parts = []
    for label, found in ranked[:limit]:
        example = found.most_common(1)[0][0]
        parts.append(f"{sum(found.values())} {label}" + (f" ({example})" if example else ""))
    if len(ranked) > limit:
        parts.append(f"{sum(sum(c.values()) for _, c in ranked[limit:])} other")
    return ", ".join(parts) or "no proposal"


def _first_line(text: str, limit: int = 100) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[:limit - 1] + "…"
