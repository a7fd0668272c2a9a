"""The lineage graph: a networkx `MultiDiGraph` built from a run database.

Nodes are variants (keyed by canonical hash; ``kind="variant"``) and rejected attempts
that produced no program (``kind="attempt"``, keyed ``attempt-<id>``: unparseable,
ungrounded or no-op outputs). Every attempt is an edge parent → child keyed ``a<id>``,
so a variant proposed twice has two edges. Attributes never hold None (absent instead),
which keeps every export format able to carry them.
"""

from __future__ import annotations

import itertools
from typing import Any

import networkx as nx

from deepphoenix.lineage._state import run_state
from deepphoenix.objectives import Direction
from deepphoenix.store import RunStore

__all__ = ["best_hash", "best_path", "build_graph", "graph_direction"]


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def build_graph(store: RunStore, include_source: bool = True) -> nx.MultiDiGraph:
    config = store.get_meta("config", {})
    graph = nx.MultiDiGraph()
    variants = store.variants()
    seed = variants[0].hash if variants else ""
    best = best_hash(store) or seed
    objective = store.objective
    graph.graph.update(_clean({
        "seed": seed, "best": best,
        "status": run_state(store.path.parent, store.get_meta("status")),
        "proposer": config.get("proposer"), "strategy": config.get("strategy"),
        "objective": objective["name"], "direction": objective["direction"],
        "config": config,
    }))
    for v in variants:
        graph.add_node(v.hash, **_clean({
            "kind": "variant", "status": str(v.status), "stage": v.stage or None,
            "reason": v.reason or None, "score": v.score,
            "params": v.metrics.get("params"), "first_episode": v.first_episode,
            "values": v.values, "source": v.source if include_source else None,
            "metrics": {k: x for k, x in v.metrics.items() if k != "losses"} or None,
        }))
    for a in store.attempts():
        target = a.child
        if target is None or target not in graph:
            target = f"attempt-{a.id}"
            graph.add_node(target, **_clean({
                "kind": "attempt", "status": a.outcome, "reason": a.reason or None,
                "first_episode": a.episode, "text": a.raw_text if include_source else None,
            }))
        graph.add_edge(a.parent, target, key=f"a{a.id}", **_clean({
            "episode": a.episode, "batch": a.batch, "slot": a.slot, "proposer": a.proposer,
            "outcome": a.outcome, "reason": a.reason or None, "edits": a.edits,
        }))
    path = best_path(graph)
    for node in path:
        graph.nodes[node]["on_best_path"] = True
    for parent, child in itertools.pairwise(path):
        for key in graph[parent][child]:
            graph.edges[parent, child, key]["on_best_path"] = True
            break
    return graph


def best_hash(store: RunStore) -> str | None:
    """The best variant so far: the finished run's, else the last finished batch's, else
    the seed's (None when nothing is recorded yet)."""
    best = store.get_meta("best")
    if best:
        return str(best)
    finished = [b for b in store.batches() if b.best]
    if finished:
        return str(finished[-1].best)
    variants = store.variants()
    return variants[0].hash if variants else None


def best_path(graph: nx.MultiDiGraph) -> list[str]:
    """Variants from the seed to the best, through accepted proposals."""
    seed, best = graph.graph.get("seed"), graph.graph.get("best")
    if not seed or not best or seed not in graph or best not in graph:
        return []
    variants = graph.subgraph(n for n, d in graph.nodes(data=True) if d["kind"] == "variant")
    try:
        path: list[str] = nx.shortest_path(variants, seed, best)
    except nx.NetworkXNoPath:
        return [seed]
    return path


def graph_direction(graph: nx.MultiDiGraph) -> Direction:
    """The run's direction a lineage graph carries (as its string, so that every export
    format holds it; a graph read back from a file has the same)."""
    return Direction.parse(str(graph.graph.get("direction", Direction.MINIMIZE)))
