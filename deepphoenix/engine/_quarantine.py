"""Quarantine: a candidate that kills the run is not evaluated a third time.

Before each evaluation round the loop records the hashes in flight in the run database
(meta ``in_flight``); a round that completes clears them. A run that dies mid-round leaves
them behind, and the next start (a resume) counts one death against each (meta
``suspects``). A suspect is then evaluated alone, so a second death names it, not its
siblings; a candidate pending when the run died and pending again when the resumed run
died is recorded as failed with that reason instead of being tried again. So a resumed
run always finishes, whatever its candidates do to the process that runs it.

The asynchronous loop (``--strategy async``, ``--fidelity asha``) has no rounds: it
records the running set with every start and every result, runs a suspect alone (the
workers drained first, nothing else started until it ends), and records a candidate with
two deaths as failed at whatever rung it was to start.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from deepphoenix.evaluator import EvalResult, EvalStatus
from deepphoenix.store import RunStore

__all__ = ["DEATHS_BEFORE_QUARANTINE", "QUARANTINED", "Quarantine"]

DEATHS_BEFORE_QUARANTINE = 2
QUARANTINED = ("quarantined: the run died twice while this candidate was being evaluated "
               "(a candidate that kills the run is not tried a third time)")
_IN_FLIGHT = "in_flight"
_SUSPECTS = "suspects"


class Quarantine:
    """The run's record of candidates that were in flight when it died."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        stored = store.get_meta(_SUSPECTS) or {}
        self.suspects: dict[str, int] = {str(k): int(v) for k, v in stored.items()}
        left = store.get_meta(_IN_FLIGHT) or []
        if left:  # the last start died during an evaluation round
            for hash_ in left:
                self.suspects[str(hash_)] = self.suspects.get(str(hash_), 0) + 1
            with store.transaction():
                store.set_meta(_SUSPECTS, self.suspects)
                store.set_meta(_IN_FLIGHT, [])

    def rounds(self, pending: Sequence[tuple[str, str]]
               ) -> tuple[list[EvalResult], list[list[tuple[str, str]]]]:
        """The failures to record for quarantined candidates, and the rounds to evaluate
        the rest in: each suspect alone, then the others together."""
        failed = [EvalResult(h, EvalStatus.FAILED, stage="quarantine", reason=QUARANTINED)
                  for h, _ in pending
                  if self.suspects.get(h, 0) >= DEATHS_BEFORE_QUARANTINE]
        quarantined = {r.hash for r in failed}
        suspects = [[job] for job in pending
                    if job[0] not in quarantined and self.suspects.get(job[0], 0)]
        others = [job for job in pending if not self.suspects.get(job[0], 0)]
        return failed, [*suspects, *([others] if others else [])]

    def deaths(self, hash_: str) -> int:
        """How many starts of the run died while `hash_` was being evaluated."""
        return self.suspects.get(hash_, 0)

    def set_in_flight(self, hashes: Sequence[str]) -> None:
        """Record `hashes` as the evaluations running now (the asynchronous loop's running
        set, written with each start and result; call it inside their transaction)."""
        self.store.set_meta(_IN_FLIGHT, list(dict.fromkeys(hashes)))

    @contextmanager
    def in_flight(self, hashes: Sequence[str]) -> Iterator[None]:
        """Record `hashes` as being evaluated until the round completes."""
        self.store.set_meta(_IN_FLIGHT, list(hashes))
        yield
        self.store.set_meta(_IN_FLIGHT, [])
