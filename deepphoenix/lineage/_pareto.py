"""The score / parameter-count Pareto front of a run: the variants no other variant beats
on both (a better-or-equal score with no more parameters, better on at least one)."""

from __future__ import annotations

from dataclasses import dataclass

from deepphoenix.objectives import Direction
from deepphoenix.status import VariantStatus
from deepphoenix.store import RunStore

__all__ = ["ParetoPoint", "pareto_front"]


@dataclass(frozen=True, slots=True)
class ParetoPoint:
    hash: str
    score: float
    params: int


def pareto_front(store: RunStore) -> list[ParetoPoint]:
    """The front among the run's scored variants with a parameter count, fewest
    parameters first."""
    direction = store.direction
    points = [ParetoPoint(v.hash, v.score, int(v.metrics["params"])) for v in store.variants()
              if v.status == VariantStatus.SCORED and v.score is not None
              and isinstance(v.metrics.get("params"), int)]
    front: list[ParetoPoint] = []
    best: float | None = None
    # Fewest parameters first (ties: best score first): a point is on the front when its
    # score beats every point with no more parameters.
    for point in sorted(points, key=lambda p: (p.params, p.score if direction is
                                               Direction.MINIMIZE else -p.score)):
        if best is None or direction.better(point.score, best):
            front.append(point)
            best = point.score
    return front
