"""Direction-aware facts about a run that the report shows: the best score so far after
each evaluation, and failures counted by stage and reason. Pure functions over store
rows (the Pareto front is `lineage._pareto`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from deepphoenix.objectives import Direction
from deepphoenix.store import AttemptRow, VariantRow

__all__ = ["BestSoFar", "best_so_far", "failure_counts"]


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
    done = sorted((v for v in variants if v.status in ("scored", "failed", "pruned")
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
        if variant.status in ("failed", "rejected"):
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
