"""Where each node of a lineage graph is drawn: one layout for the PNG picture and the HTML
report.

x is the batch a node was proposed in (episode-major, a slot's small offset so a batch's
candidates do not overlap); y is its score. Nodes without a score (failed, rejected,
pruned, not evaluated) sit in a band on the worse side of every score, so they never mix
with the better ones; the seed, and anything never proposed, sit at x = 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from deepphoenix.lineage._graph import graph_direction
from deepphoenix.objectives import Direction

__all__ = ["LineageLayout", "layout_lineage"]

_SLOT_OFFSET = 0.06  # of a batch's width, per slot
_BAND_MARGIN = 0.15  # of the score range, between the worst score and the unscored band


@dataclass(frozen=True, slots=True)
class LineageLayout:
    """Each node's (x, y), the y of the unscored band, the score range, and the first
    edge (attempt) that proposed each node."""

    position: dict[str, tuple[float, float]]
    band: float
    low: float
    high: float
    proposed_by: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    @property
    def spread(self) -> float:
        """The score range, or 1 when every score is the same."""
        return self.high - self.low or 1.0

    def in_band(self, node: str) -> bool:
        return node in self.position and self.position[node][1] == self.band


def layout_lineage(graph: nx.MultiDiGraph, batches_per_episode: int) -> LineageLayout:
    """The positions of `graph`'s nodes, the direction read from the graph."""
    scores = [d["score"] for _, d in graph.nodes(data=True) if d.get("score") is not None]
    low, high = (min(scores), max(scores)) if scores else (0.0, 1.0)
    margin = _BAND_MARGIN * (high - low or 1.0)
    band = low - margin if graph_direction(graph) is Direction.MAXIMIZE else high + margin
    position: dict[str, tuple[float, float]] = {}
    proposed_by: dict[str, tuple[str, dict[str, Any]]] = {}
    for u, v, data in graph.edges(data=True):
        if v in position:
            continue
        x = ((data["episode"] - 1) * batches_per_episode + data["batch"]
             + data["slot"] * _SLOT_OFFSET)
        score = graph.nodes[v].get("score")
        position[v] = (x, band if score is None else score)
        proposed_by[v] = (u, data)
    for node, data in graph.nodes(data=True):  # the seed, and anything never proposed
        if node not in position:
            score = data.get("score")
            position[node] = (0.0, band if score is None else score)
    return LineageLayout(position, band, low, high, proposed_by)
