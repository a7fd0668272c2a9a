"""Exports round-trip a lineage-shaped graph, parallel edges and structured attributes
included (a parent can propose the same child in two batches)."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from deepphoenix.lineage import (
    read_gexf,
    read_graphml,
    read_json,
    write_gexf,
    write_graphml,
    write_json,
)
from tests.lineage.graphs import assert_same_graph


def _graph(parallel: bool) -> nx.MultiDiGraph:
    graph = nx.MultiDiGraph(seed="a", best="b", config={"episodes": 2, "grammar": "t5"})
    graph.add_node("a", kind="variant", status="scored", loss=4.5, values={"d_ff": 256})
    graph.add_node("b", kind="variant", status="scored", loss=3.9, values={"d_ff": 300})
    for batch in (1, 2, 3) if parallel else (1,):  # attempts a -> b, keyed as the store does
        graph.add_edge("a", "b", key=f"a{batch}", episode=1, batch=batch,
                       outcome="ok" if batch == 1 else "duplicate",
                       edits=[{"site": "d_ff", "value": 300}])
    graph.add_edge("b", "a", key="a9", episode=2, batch=1, outcome="ok", edits=[])
    return graph


@pytest.mark.parametrize("parallel", [True, False])
@pytest.mark.parametrize(("writer", "reader"), [
    (write_json, read_json), (write_graphml, read_graphml), (write_gexf, read_gexf)])
def test_edges_and_their_keys_round_trip(tmp_path: Path, writer, reader,  # type: ignore[no-untyped-def]
                                         parallel: bool) -> None:
    graph = _graph(parallel)
    path = tmp_path / "g"
    writer(graph, path)
    again = reader(path)
    assert_same_graph(again, graph)
    assert again.number_of_edges("a", "b") == (3 if parallel else 1)
