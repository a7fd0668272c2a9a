"""GraphML export (for Gephi, yEd, Cytoscape). Structured attributes are JSON strings."""

from __future__ import annotations

import io
from pathlib import Path

import networkx as nx

from deepphoenix.lineage._flatten import flatten, unflatten
from deepphoenix.store_io import write_bytes_atomic

__all__ = ["read_graphml", "write_graphml"]


def write_graphml(graph: nx.MultiDiGraph, path: Path) -> None:
    buffer = io.BytesIO()
    nx.write_graphml(flatten(graph), buffer, named_key_ids=True)
    write_bytes_atomic(Path(path), buffer.getvalue())


def read_graphml(path: Path) -> nx.MultiDiGraph:
    graph = nx.MultiDiGraph(nx.read_graphml(str(path), force_multigraph=True))
    for key in ("node_default", "edge_default"):  # added by the reader, not ours
        graph.graph.pop(key, None)
    return unflatten(graph)
