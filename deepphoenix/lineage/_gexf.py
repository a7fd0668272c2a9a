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
    nx.write_gexf(flat, buffer)
    write_bytes_atomic(Path(path), buffer.getvalue())


def read_gexf(path: Path) -> nx.MultiDiGraph:
    graph = nx.MultiDiGraph(nx.read_gexf(str(path)))
    attrs = _decode(graph.graph.get("name", ""))
    graph.graph = attrs
    for _, data in graph.nodes(data=True):
        data.pop("label", None)
    for _, _, data in graph.edges(data=True):
        data.pop("id", None)
    return unflatten(graph)


def _encode(attrs: dict[str, object]) -> str:
    return json.dumps(attrs, sort_keys=True)


def _decode(text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
