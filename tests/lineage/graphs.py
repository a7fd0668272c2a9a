"""The comparison every export round-trip test makes."""

from __future__ import annotations

import networkx as nx


def assert_same_graph(again: nx.MultiDiGraph, graph: nx.MultiDiGraph) -> None:
    """Nodes, keyed edges and graph attributes, all with their data, are equal."""
    assert dict(again.nodes(data=True)) == dict(graph.nodes(data=True))
    assert sorted(again.edges(keys=True, data=True), key=str) == sorted(
        graph.edges(keys=True, data=True), key=str)
    assert again.graph == graph.graph
