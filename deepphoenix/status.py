"""A variant's status and an evaluation job's (a rung's): one enum each, used by the
evaluator, the store (its SQL is written from them), the loops, the lineage and the CLI.
Members are strings (`StrEnum`), so a status read back from the database or a worker's
reply compares equal to its member."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["RungStatus", "VariantStatus", "sql_list"]


class VariantStatus(StrEnum):
    """Where a variant stands. A variant is stored ``pending`` when proposed and moves once
    to one of the other four (a pruned one may be promoted again under asha)."""

    PENDING = "pending"  # proposed, not evaluated yet
    SCORED = "scored"  # evaluated; its score is the objective's value
    REJECTED = "rejected"  # a static check, the parameter limit or a constraint: never trained
    FAILED = "failed"  # raised, hung, ran out of memory, produced NaN or no score
    PRUNED = "pruned"  # stopped early at a rung (--fidelity asha)

    @property
    def evaluated(self) -> bool:
        """Whether an evaluation ran to its end or its rung (scored, failed or pruned)."""
        return self in (VariantStatus.SCORED, VariantStatus.FAILED, VariantStatus.PRUNED)

    @property
    def done(self) -> bool:
        """Whether it is never evaluated again (anything but pending)."""
        return self is not VariantStatus.PENDING


class RungStatus(StrEnum):
    """One evaluation job of a variant at one rung (the ``rungs`` table)."""

    RUNNING = "running"
    SCORED = "scored"
    REJECTED = "rejected"
    FAILED = "failed"


def sql_list(*statuses: StrEnum) -> str:
    """``('scored', 'failed')``: statuses for an SQL ``IN``, written from the enum."""
    return "(" + ", ".join(f"'{s.value}'" for s in statuses) + ")"
