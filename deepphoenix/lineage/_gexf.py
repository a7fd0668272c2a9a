"""GEXF export (Gephi's own format). Structured attributes are JSON strings."""

from __future__ import annotations

import io
import json
from pathlib import Path

import networkx as nx

from deepphoenix.lineage._flatten import flatten, unflatten
from deepphoenix.store_io import write_bytes_atomic

__all__ = ["read_gexf", "write_gexf"]


def write_gexf(graph: nx.MultiDiGraph, path: Path) -> None:
    buffer = io.BytesIO()
    flat = flatten(graph)
    # GEXF has no graph-level attributes: carry them on a marker in the graph's name.
    flat.graph = {"name": _encode(flat.graph)}
    # Edge keys travel as an attribute: networkx reads a file without parallel edges back
    # as a simple graph and would number the keys afresh.
    for _, _, key, data in flat.edges(keys=True, data=True):
        data[_KEY] = key
    nx.write_gexf(flat, buffer)
    write_bytes_atomic(Path(path), buffer.getvalue())


def read_gexf(path: Path) -> nx.MultiDiGraph:
    read = nx.MultiDiGraph(nx.read_gexf(str(path)))
    graph = nx.MultiDiGraph()
    graph.graph = _decode(read.graph.get("name", ""))
    for node, data in read.nodes(data=True):
        data.pop("label", None)
        graph.add_node(node, **data)
    for u, v, key, data in read.edges(keys=True, data=True):
        data.pop("id", None)
        graph.add_edge(u, v, key=data.pop(_KEY, key), **data)
    return unflatten(graph)


_KEY = "multiedge_key"


def _encode(attrs: dict[str, object]) -> str:
    return json.dumps(attrs, sort_keys=True)


def _decode(text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
