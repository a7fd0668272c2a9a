"""Typed outcomes of rewriting a program: what the mutator and grounding return instead of
raising for expected failures."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Check", "Outcome"]


class Outcome(StrEnum):
    """Why a candidate was accepted or rejected before it ever runs."""

    OK = "ok"
    NO_OP = "no-op"  # the edits leave every site as it was
    OUT_OF_DOMAIN = "out-of-domain"  # a value outside its site's bounds or choices
    INVARIANT = "invariant"  # an invariant or a derivation does not hold
    UNPARSEABLE = "unparseable"  # model text that is not Python (or not an edit script)
    UNGROUNDED = "ungrounded"  # model text changed something outside the grammar's sites
    DUPLICATE = "duplicate"  # the same variant as another candidate of the batch


@dataclass(frozen=True, slots=True)
class Check:
    """The result of validating values: `OK`, or the first broken rule and why."""

    outcome: Outcome
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


OK = Check(Outcome.OK)
