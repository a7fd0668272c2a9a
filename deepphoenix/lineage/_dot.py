"""Graphviz DOT export, written directly (no pygraphviz needed). Nodes show a short hash and
the score; the best path is bold; rejected attempts are grey and dashed. Render with
``dot -Tsvg lineage.dot -o lineage.svg``."""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from deepphoenix.scores import format_score
from deepphoenix.status import VariantStatus
from deepphoenix.store_io import write_text_atomic

__all__ = ["to_dot", "write_dot"]


def _quote(text: object) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(graph: nx.MultiDiGraph) -> str:
    lines = ["digraph lineage {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
    for node, data in graph.nodes(data=True):
        if data.get("kind") == "attempt":
            label = data.get("status", VariantStatus.REJECTED)
            style = 'style=dashed, color=gray60, fontcolor=gray50'
        else:
            score = data.get("score")
            # a real newline: `_quote` writes it as DOT's \n escape
            label = f"{str(node)[:8]}\n" + (f"{graph.graph.get('objective', 'score')} "
                                              + format_score(score) if score is not None
                                              else data.get("status", ""))
            style = "color=gray40" if data.get("status") != VariantStatus.SCORED else ""
            if data.get("on_best_path"):
                style = "penwidth=2.5, color=firebrick"
        lines.append(f"  {_quote(node)} [label={_quote(label)}{', ' if style else ''}{style}];")
    for u, v, data in graph.edges(data=True):
        edits = ", ".join(f"{e['site']}={e['value']}" for e in data.get("edits", []))
        label = f"e{data.get('episode')}b{data.get('batch')}" + (f": {edits}" if edits else "")
        style = "penwidth=2.5, color=firebrick" if data.get("on_best_path") else (
            "color=gray70" if data.get("outcome") != "ok" else "")
        lines.append(f"  {_quote(u)} -> {_quote(v)} [label={_quote(label)}"
                     f"{', ' if style else ''}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_dot(graph: nx.MultiDiGraph, path: Path) -> None:
    write_text_atomic(Path(path), to_dot(graph))
