"""Direction-aware facts about a run that the report shows: the best score so far after
each evaluation, failures counted by stage and reason, and what the run's constraints
cost (candidates checked out before evaluation, slots drawn again, slots lost). Pure
functions over store rows (the Pareto front is `lineage._pareto`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from deepphoenix.evaluator import CheckResult
from deepphoenix.objectives import Direction
from deepphoenix.status import VariantStatus
from deepphoenix.store import AttemptRow, VariantRow

__all__ = [
    "BestSoFar",
    "ConstraintCounts",
    "SourceCount",
    "best_so_far",
    "constraint_counts",
    "describe_sources",
    "failure_counts",
    "source_counts",
]

_CHECKED_OUT = "constraint"  # the stage of a variant a check kept from evaluation


@dataclass(frozen=True, slots=True)
class BestSoFar:
    """One point per evaluation (scored, failed, or stopped early at a lower rung: it
    counts, and never changes the best), in the order they finished."""

    evaluations: tuple[int, ...]
    seconds: tuple[float, ...]
    best: tuple[float | None, ...]


def best_so_far(variants: list[VariantRow], direction: Direction, start: float) -> BestSoFar:
    """The best score after each evaluation; `start` is the run's creation time, so the
    wall-time axis counts from the run's start (proposer training included)."""
    done = sorted((v for v in variants if VariantStatus(v.status).evaluated
                   and v.scored_at is not None), key=lambda v: (v.scored_at or 0.0, v.hash))
    better = direction.better
    best: float | None = None
    evaluations, seconds, bests = [], [], []
    for index, variant in enumerate(done, start=1):
        if variant.score is not None and (best is None or better(variant.score, best)):
            best = variant.score
        evaluations.append(index)
        seconds.append(max(0.0, (variant.scored_at or start) - start))
        bests.append(best)
    return BestSoFar(tuple(evaluations), tuple(seconds), tuple(bests))


def failure_counts(variants: list[VariantRow], attempts: list[AttemptRow]
                   ) -> list[tuple[str, str, int]]:
    """(stage, reason, count), most frequent first: evaluations that failed or were
    rejected, by stage, and proposals that never became a program, by outcome (stage
    ``proposal``). Reasons are cut to their first line so near-identical ones group."""
    counts: Counter[tuple[str, str]] = Counter()
    for variant in variants:
        if variant.status in (VariantStatus.FAILED, VariantStatus.REJECTED):
            counts[(variant.stage or variant.status, _first_line(variant.reason))] += 1
    for attempt in attempts:
        if attempt.child is None and attempt.outcome != "ok":
            counts[("proposal", f"{attempt.outcome}: {_first_line(attempt.reason)}"
                    if attempt.reason else attempt.outcome)] += 1
    return [(stage, reason, n) for (stage, reason), n in
            sorted(counts.items(), key=lambda item: (-item[1], item[0]))]


def _first_line(text: str, limit: int = 120) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class ConstraintCounts:
    """What a run's constraints (``--max-params``, ``--constraint``) did."""

    checked: int  # candidates checked before evaluation
    rejected: int  # of them, kept from an evaluation slot (never evaluated)
    over_params: int  # of those, over --max-params (the rest broke the user's constraint)
    redraws: int  # candidates drawn again for the slot of a rejected one
    lost: int  # slots whose last draw was still rejected: no evaluation
    evaluated_over: int  # candidates evaluated and then rejected over --max-params
    #                      (at the build stage: runs that check only then, or a model
    #                      the check could not build)

    @property
    def any(self) -> bool:
        return bool(self.checked or self.redraws or self.evaluated_over)

    def to_dict(self) -> dict[str, int]:
        return {"checked": self.checked, "rejected": self.rejected,
                "over_params": self.over_params, "redraws": self.redraws,
                "lost": self.lost, "evaluated_over": self.evaluated_over}

    def describe(self) -> str:
        """One line: ``9 candidates rejected before evaluation (7 over --max-params, 2 by
        the constraint), 9 drawn again, 0 slots lost``."""
        user = self.rejected - self.over_params
        rules = ", ".join(part for part in (
            f"{self.over_params} over --max-params" if self.over_params else "",
            f"{user} by the constraint" if user else "") if part)
        text = (f"{self.rejected} of {self.checked} candidates rejected before evaluation"
                + (f" ({rules})" if rules else "")
                + f", {self.redraws} drawn again, {self.lost} slot"
                + ("" if self.lost == 1 else "s") + " lost")
        if self.evaluated_over:
            text += f"; {self.evaluated_over} evaluated over --max-params"
        return text


def constraint_counts(variants: list[VariantRow], attempts: list[AttemptRow],
                      checks: dict[str, CheckResult]) -> ConstraintCounts:
    """The `ConstraintCounts` of a run from its rows."""
    rejected = {v.hash for v in variants
                if v.status == VariantStatus.REJECTED and v.stage == _CHECKED_OUT}
    over = sum(1 for h in rejected if (c := checks.get(h)) is not None and c.rule == "max-params")
    redrawn = {(a.episode, a.batch, a.redraw_of) for a in attempts if a.redraw_of is not None}
    lost = sum(1 for a in attempts if a.child in rejected and a.outcome == "ok"
               and (a.episode, a.batch, a.slot) not in redrawn)
    evaluated_over = sum(1 for v in variants
                         if v.status == VariantStatus.REJECTED and v.stage == "build"
                         and "over the limit of" in v.reason)
    proposed = {a.child for a in attempts if a.child is not None}
    return ConstraintCounts(
        checked=sum(1 for h in checks if h in proposed),
        rejected=len(rejected), over_params=over, redraws=len(redrawn), lost=lost,
        evaluated_over=evaluated_over)


@dataclass(frozen=True, slots=True)
class SourceCount:
    """One drawer of a proposer's pool (``learned``: ``t5``, ``gp``, ``draw``): how many
    candidates it put in the batches, how many were scored, and how many of those beat
    the best score so far when they finished (its wins)."""

    source: str
    proposed: int
    scored: int
    wins: int

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "proposed": self.proposed, "scored": self.scored,
                "wins": self.wins}


def source_counts(variants: list[VariantRow], attempts: list[AttemptRow],
                  direction: Direction) -> list[SourceCount]:
    """Per drawer, what it proposed, what was scored and what won (empty where no attempt
    names a drawer: every proposer but ``learned``). The seed's score is the first best."""
    source_of = {a.child: a.source for a in attempts if a.source and a.child}
    if not source_of:
        return []
    proposed: dict[str, int] = {}
    for attempt in attempts:
        if attempt.source and attempt.child:
            proposed[attempt.source] = proposed.get(attempt.source, 0) + 1
    scored: dict[str, int] = {}
    wins: dict[str, int] = {}
    best: float | None = None
    done = sorted((v for v in variants if v.status == VariantStatus.SCORED
                   and v.score is not None), key=lambda v: (v.scored_at or 0.0, v.hash))
    for variant in done:
        assert variant.score is not None
        source = source_of.get(variant.hash)
        if source is not None:
            scored[source] = scored.get(source, 0) + 1
        if best is None or direction.better(variant.score, best):
            if best is not None and source is not None:
                wins[source] = wins.get(source, 0) + 1
            best = variant.score
    return [SourceCount(s, proposed[s], scored.get(s, 0), wins.get(s, 0))
            for s in sorted(proposed)]


def describe_sources(counts: list[SourceCount]) -> str:
    """``t5 14 proposed, 9 scored, 2 wins; gp ...``: one line."""
    return "; ".join(f"{c.source} {c.proposed} proposed, {c.scored} scored, {c.wins} "
                     f"win{'' if c.wins == 1 else 's'}" for c in counts)
