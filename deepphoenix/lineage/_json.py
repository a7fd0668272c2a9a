"""Node-link JSON: the lossless export. `read_json(write_json(g))` gives back `g`."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx

from deepphoenix.store_io import write_text_atomic

__all__ = ["read_json", "write_json"]


def write_json(graph: nx.MultiDiGraph, path: Path) -> None:
    data = nx.node_link_data(graph, edges="edges")
    write_text_atomic(Path(path), json.dumps(data, indent=1, sort_keys=True) + "\n")


def read_json(path: Path) -> nx.MultiDiGraph:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    graph = nx.node_link_graph(data, directed=True, multigraph=True, edges="edges")
    return graph
