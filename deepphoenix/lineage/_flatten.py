"""GraphML and GEXF hold only scalars: structured attributes travel as JSON strings and the
graph records which keys it flattened, so the readers can restore them."""

from __future__ import annotations

import json
from typing import Any

import networkx as nx

__all__ = ["FLATTENED", "flatten", "unflatten"]

FLATTENED = "deepphoenix_json_keys"


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def flatten(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """A copy whose every attribute is a scalar."""
    out = nx.MultiDiGraph()
    keys: set[str] = set()

    def convert(data: dict[str, Any]) -> dict[str, Any]:
        flat = {}
        for key, value in data.items():
            if _scalar(value):
                flat[key] = value
            else:
                flat[key] = json.dumps(value, sort_keys=True)
                keys.add(key)
        return flat

    out.graph.update(convert(graph.graph))
    for node, data in graph.nodes(data=True):
        out.add_node(node, **convert(data))
    for u, v, key, data in graph.edges(keys=True, data=True):
        out.add_edge(u, v, key=key, **convert(data))
    out.graph[FLATTENED] = json.dumps(sorted(keys))
    return out


def unflatten(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """Undo `flatten` in place and return the graph."""
    keys = set(json.loads(graph.graph.pop(FLATTENED, "[]")))

    def restore(data: dict[str, Any]) -> None:
        for key in keys & set(data):
            if isinstance(data[key], str):
                data[key] = json.loads(data[key])

    restore(graph.graph)
    for _, data in graph.nodes(data=True):
        restore(data)
    for _, _, data in graph.edges(data=True):
        restore(data)
    return graph
