"""The search loop (the paper's Algorithm 1) over an open run directory.

::

    for episode in 1..E:
        proposer.begin_episode(best)          # the learned proposer trains here
        for batch in 1..B:
            parent ← strategy.parent(best, seed)
            candidates ← proposer.propose(parent) × C, grounded on the parent
            score each new valid candidate (cached by hash)
            proposer.observe(results)
            best ← strategy.select(best, candidates, direction)

Everything is recorded in the run database as it happens. Resuming replays the loop:
finished batches and episodes are read back, a batch whose candidates were already
proposed reuses them, a variant already evaluated is never evaluated again, the proposer
observes every stored result before the first new batch, and every random draw comes
from a seed derived from the run seed and the (episode, batch), so a resumed run ends
where an uninterrupted one would.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from deepphoenix.engine._quarantine import Quarantine
from deepphoenix.engine._rundir import RunDir, derive_seed
from deepphoenix.engine._strategy import Scored, Strategy
from deepphoenix.errors import DeepPhoenixError, RunDirError
from deepphoenix.evaluator import EvalResult, Evaluator
from deepphoenix.outcome import Outcome
from deepphoenix.proposers import Observation, Proposal, Proposer

__all__ = ["Event", "SearchLoop"]


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened in a run, for progress displays and `--json` output."""

    kind: str
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Batch:
    """A batch's proposals as the loop needs them: outcome counts and valid children."""

    outcomes: dict[str, int]
    valid: list[str]


class SearchLoop:
    """Episodes of batches over one run directory; returns the best variant's hash."""

    def __init__(self, run: RunDir, proposer: Proposer, evaluator: Evaluator,
                 strategy: Strategy, emit: Callable[..., None]) -> None:
        self.run = run
        self.store = run.store
        self.config = run.config
        self.proposer = proposer
        self.evaluator = evaluator
        self.strategy = strategy
        self.direction = run.objective.direction
        self.emit = emit
        self.quarantine = Quarantine(self.store)  # counts a death the last start left

    # -- scores --------------------------------------------------------------------------
    def score(self, hash_: str) -> float | None:
        row = self.store.variant(hash_)
        return None if row is None or row.status != "scored" else row.score

    def _evaluate(self, hashes: Sequence[str], episode: int, batch: int) -> None:
        pending = []
        for hash_ in dict.fromkeys(hashes):
            row = self.store.variant(hash_)
            if row is None:
                raise RunDirError(f"variant {hash_} is missing from the run database")
            if not row.done:
                pending.append((hash_, row.source))
        self.emit("scoring", episode=episode, batch=batch, count=len(pending))
        quarantined, rounds = self.quarantine.rounds(pending)
        for result in quarantined:
            self._store_result(result, episode, batch)
        for jobs in rounds:
            with self.quarantine.in_flight([h for h, _ in jobs]):
                for result in self.evaluator.evaluate(jobs):
                    self._store_result(result, episode, batch)

    def _store_result(self, result: EvalResult, episode: int, batch: int) -> None:
        self.store.record_evaluation(result)
        self.emit("evaluated", episode=episode, batch=batch, hash=result.hash,
                  status=result.status.value, stage=result.stage, reason=result.reason,
                  score=result.score, params=result.metrics.get("params"),
                  seconds=result.metrics.get("wall_seconds"),
                  done=self.store.evaluations_done())

    def _observations(self, episode: int, batch: int) -> list[Observation]:
        """What the proposer learns from: each evaluated child of a batch, once, in the
        order the batch recorded them."""
        seen: set[str] = set()
        found = []
        for attempt in self.store.attempts(episode, batch):
            child = attempt.child
            if child is None or child in seen or attempt.outcome != Outcome.OK.value:
                continue
            row = self.store.variant(child)
            if row is None or not row.done:
                continue
            seen.add(child)
            found.append(Observation(attempt.parent, child, row.values, row.status,
                                     row.score if row.status == "scored" else None))
        return found

    # -- the loop ------------------------------------------------------------------------
    def _evaluate_seed(self) -> str:
        """Score the seed (once; a resume reads it back); raise if it fails."""
        seed = self.run.seed_program
        with self.store.transaction():
            self.store.add_variant(seed.hash, seed.text, seed.values, 0)
        self._evaluate([seed.hash], 0, 0)
        seed_row = self.store.variant(seed.hash)
        assert seed_row is not None
        if seed_row.status != "scored":
            raise DeepPhoenixError(f"the seed itself fails at the {seed_row.stage} stage: "
                                   f"{seed_row.reason}")
        self.emit("seed", hash=seed.hash, score=seed_row.score,
                  params=seed_row.metrics.get("params"))
        return seed.hash

    def execute(self) -> str:
        c = self.config
        seed = self.run.seed_program
        self._evaluate_seed()
        # The proposer's state is rebuilt from the database: every finished batch's
        # results, in order (an unfinished batch is observed when it finishes).
        finished = [(b["episode"], b["batch"]) for b in self.store.batches()
                    if b["finished_at"] is not None]
        history = [o for e, b in finished for o in self._observations(e, b)]
        if history:
            self.proposer.observe(history)
        best = seed.hash
        for episode in range(1, c.episodes + 1):
            record = self.store.episode(episode)
            if record is not None and record["finished_at"] is not None:
                best = record["best"]
                continue
            if record is not None:
                best = record["source_hash"]
            self._begin_episode(episode, best, record)
            for batch in range(1, c.batches + 1):
                best = self._batch(episode, batch, best)
            self.store.finish_episode(episode, best)
            self.emit("episode_done", episode=episode, best=best, score=self.score(best))
        return best

    def _begin_episode(self, episode: int, best: str, record: dict[str, Any] | None) -> None:
        train_seed = derive_seed(self.config.seed, "train", episode)
        self.store.start_episode(episode, best, train_seed)
        program = self.run.parse(self._source(best))
        self.emit("episode", episode=episode, episodes=self.config.episodes, source=best,
                  score=self.score(best))
        stored = (record["training"] if record is not None
                  and record["trained_at"] is not None else None)
        report = self.proposer.begin_episode(episode, program, train_seed, stored)
        if report is not None and stored is None:
            self.store.record_training(episode, report)
            if "steps" in report:  # a stage ran (not failed, not reused)
                self.emit("trained", episode=episode, steps=report["steps"],
                          final_loss=report["final_loss"], seconds=report["seconds"],
                          params=report["params"])

    def _source(self, hash_: str) -> str:
        row = self.store.variant(hash_)
        if row is None:
            raise RunDirError(f"variant {hash_} is missing from the run database")
        return row.source

    def _batch(self, episode: int, batch: int, best: str) -> str:
        record = self.store.batch(episode, batch)
        if record is not None and record["finished_at"] is not None:
            return str(record["best"])
        _parent, plan = self._open_batch(episode, batch, best)
        self._evaluate(plan.valid, episode, batch)
        self.proposer.observe(self._observations(episode, batch))
        chosen = self.strategy.select(
            Scored(best, self.score(best)),
            [Scored(h, self.score(h)) for h in dict.fromkeys(plan.valid)],
            self.direction,
        )
        self.store.finish_batch(episode, batch, chosen.hash)
        self.emit("batch_done", episode=episode, batch=batch, best=chosen.hash,
                  score=chosen.score, improved=chosen.hash != best)
        return chosen.hash

    def _open_batch(self, episode: int, batch: int, best: str) -> tuple[str, _Batch]:
        """Start batch `batch` of `episode` from the strategy's parent of `best`: its
        parent and its candidates (those stored, on resume, else newly proposed)."""
        parent = self.strategy.parent(best, self.run.seed_program.hash)
        seed = derive_seed(self.config.seed, "propose", episode, batch)
        self.store.start_batch(episode, batch, parent, seed)
        self.emit("batch", episode=episode, batch=batch, batches=self.config.batches,
                  parent=parent)
        plan = self._stored_batch(episode, batch) or self._propose(episode, batch, parent, seed)
        self.emit("proposed", episode=episode, batch=batch, outcomes=plan.outcomes)
        return parent, plan

    def _stored_batch(self, episode: int, batch: int) -> _Batch | None:
        """The proposals an interrupted start of this batch stored, if any."""
        attempts = self.store.attempts(episode, batch)
        if not attempts:
            return None
        return _Batch(dict(Counter(a.outcome for a in attempts)),
                      [a.child for a in attempts if a.outcome == Outcome.OK.value and a.child])

    def _propose(self, episode: int, batch: int, parent: str, seed: int,
                 count: int | None = None) -> _Batch:
        parent_program = self.run.parse(self._source(parent))
        began = time.monotonic()
        # Every slot goes to a variant this run has not met: a repeat would spend an
        # evaluation slot on a cached score (and never win a greedy step).
        proposals = self.proposer.propose(parent_program, count or self.config.candidates,
                                          seed, self.store.variant_hashes())
        self._record(episode, batch, parent, self.proposer.name, proposals)
        self.store.set_batch_proposal_time(episode, batch, time.monotonic() - began)
        outcomes = Counter(p.mutation.outcome.value for p in proposals)
        valid = [p.mutation.variant.hash for p in proposals
                 if p.mutation.ok and p.mutation.variant is not None]
        return _Batch(dict(outcomes), valid)

    def _record(self, episode: int, batch: int, parent: str, proposer: str,
                proposals: list[Proposal]) -> None:
        rows = []
        with self.store.transaction():
            for slot, proposal in enumerate(proposals):
                m = proposal.mutation
                child = m.variant.hash if m.variant is not None else None
                if m.variant is not None and m.outcome in (Outcome.OK, Outcome.OUT_OF_DOMAIN,
                                                           Outcome.INVARIANT):
                    status = "pending" if m.ok else "rejected"
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
                    "raw_text": proposal.text,
                })
            self.store.add_attempts(rows)
