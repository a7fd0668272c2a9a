"""Pictures of a run, as PNG (matplotlib, no display needed).

- `plot_training`: the paper's Figure 1: the training-stage loss curve of each episode's
  model, the first 3 steps omitted so the start does not set the scale.
- `plot_lineage`: every variant at (batch, score); proposals as lines from parent to
  child; the path from seed to best highlighted; failed and rejected attempts faint, in a
  band on the worse side of every score (above for a minimized objective).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx

from deepphoenix.lineage._graph import best_path, graph_direction
from deepphoenix.lineage._layout import layout_lineage
from deepphoenix.objectives import Direction
from deepphoenix.status import VariantStatus
from deepphoenix.store import RunStore

__all__ = ["SKIP_STEPS", "plot_lineage", "plot_training"]

SKIP_STEPS = 3


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_training(store: RunStore, path: Path) -> bool:
    """Write Figure 1; False (and no file) when no episode has a training curve."""
    curves = [(e.episode, e.training) for e in store.episodes() if e.training.get("losses")]
    if not curves:
        return False
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 5))
    colors = plt.cm.viridis([i / max(1, len(curves) - 1) for i in range(len(curves))])
    for (episode, training), color in zip(curves, colors, strict=True):
        losses = training["losses"][SKIP_STEPS:]
        params = training.get("params")
        label = f"episode {episode}" + (f" ({params / 1e6:.2f} M)" if params else "")
        axes.plot(range(SKIP_STEPS + 1, SKIP_STEPS + 1 + len(losses)), losses, color=color,
                  label=label, linewidth=1.2, marker="o" if len(losses) < 30 else None,
                  markersize=3)
    axes.set_xlabel("training step")
    axes.set_ylabel("training loss (code refinement)")
    axes.set_title(f"Training loss of each episode's model (first {SKIP_STEPS} steps omitted)")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def plot_lineage(graph: nx.MultiDiGraph, path: Path, batches_per_episode: int) -> None:
    plt = _pyplot()
    layout = layout_lineage(graph, batches_per_episode)
    position, band = layout.position, layout.band
    maximize = graph_direction(graph) is Direction.MAXIMIZE
    figure, axes = plt.subplots(figsize=(10, 5.5))
    for u, v, data in graph.edges(data=True):
        if u in position and v in position:
            faint = (data.get("outcome") != "ok"
                     or graph.nodes[v].get("status") != VariantStatus.SCORED)
            axes.plot(*zip(position[u], position[v], strict=True),
                      color="0.85" if faint else "0.6", linewidth=0.5, zorder=1)
    groups: dict[str, tuple[list[tuple[float, float]], str, float]] = {
        "scored": ([], "tab:blue", 1.0), "failed": ([], "tab:orange", 0.5),
              "other": ([], "0.6", 0.3)}
    for node, data in graph.nodes(data=True):
        if node not in position:
            continue
        status = data.get("status")
        key = status if status in (VariantStatus.SCORED, VariantStatus.FAILED) else "other"
        groups[key][0].append(position[node])
    for label, (points, color, alpha) in groups.items():
        if points:
            xs, ys = zip(*points, strict=True)
            axes.scatter(xs, ys, s=14, color=color, alpha=alpha, zorder=2,
                         label={"other": "rejected / not evaluated"}.get(label, label))
    path_nodes = [n for n in best_path(graph) if n in position]
    if path_nodes:
        xs, ys = zip(*(position[n] for n in path_nodes), strict=True)
        axes.plot(xs, ys, color="firebrick", linewidth=2.2, marker="o", zorder=3,
                  label="seed → best")
        axes.annotate("best", position[path_nodes[-1]], textcoords="offset points",
                      xytext=(6, -10), color="firebrick")
        axes.annotate("seed", position[path_nodes[0]], textcoords="offset points",
                      xytext=(6, 6), color="firebrick")
    if any(y == band for _, y in position.values()):  # only when something failed
        axes.axhline(band, color="0.9", linewidth=6, zorder=0)
        axes.annotate("failed / rejected", (0, band), textcoords="offset points",
                      xytext=(2, 5), fontsize=7, color="0.5")
    axes.set_xlabel(f"batch ({batches_per_episode} per episode)")
    objective = graph.graph.get("objective", "score")
    axes.set_ylabel(f"{objective} ({'higher' if maximize else 'lower'} is better)")
    axes.set_title("Lineage: every proposal; failed and rejected in the grey band")
    if axes.get_legend_handles_labels()[0]:  # an empty run has nothing to label
        # outside the axes, so that it never hides a point
        axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
