"""One self-contained HTML report of one or more runs, drawn with plotly.

The file inlines plotly.js, its own script and style, and every datum it shows, so it
opens offline and makes no network request. Sections:

- per run: the lineage (every variant and rejected attempt at (batch, score), the
  seed → best path highlighted; clicking a node shows its score, parameter count, edits,
  unified diff against its parent, and for a failure the stage, reason and traceback),
  the paper's Figure 1 (each episode's training-loss curve), failures by stage and
  reason, and the run's config;
- across runs: the best score so far against evaluations and against wall time (one
  line per run), and score against parameter count with each run's Pareto front.

Every comparison follows the run's objective direction. Program texts are model output:
the page script writes them with ``textContent`` only, and the embedded JSON escapes
``<`` so no text can close its script element.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import networkx as nx

from deepphoenix.lineage._graph import best_path, build_graph, graph_direction
from deepphoenix.lineage._layout import layout_lineage
from deepphoenix.lineage._pareto import ParetoPoint, pareto_front
from deepphoenix.lineage._plot import SKIP_STEPS
from deepphoenix.lineage._summary import (
    ConstraintCounts,
    SourceCount,
    best_so_far,
    constraint_counts,
    describe_sources,
    failure_counts,
    source_counts,
)
from deepphoenix.mutator import bundle_diff
from deepphoenix.objectives import Direction
from deepphoenix.scores import format_score, printable
from deepphoenix.status import VariantStatus
from deepphoenix.store import EpisodeRow, RunStore, VariantRow
from deepphoenix.store_io import write_text_atomic

__all__ = ["ReportSummary", "RunReport", "load_run", "render_report", "write_report"]

_FAIL_COLOR = "#e07b00"
_OK_COLOR = "#1f77b4"
_PATH_COLOR = "#b22222"
_ATTEMPT_COLOR = "#9e9e9e"


@dataclass(frozen=True, slots=True)
class RunReport:
    """What the report shows of one run directory."""

    name: str
    run_dir: Path
    graph: nx.MultiDiGraph
    variants: tuple[VariantRow, ...]
    failures: tuple[tuple[str, str, int], ...]
    episodes: tuple[EpisodeRow, ...]
    created_at: float
    front: tuple[ParetoPoint, ...]
    constraints: ConstraintCounts
    sources: tuple[SourceCount, ...] = ()  # learned's pool: each drawer's share and wins

    @property
    def direction(self) -> Direction:
        return graph_direction(self.graph)

    @property
    def objective(self) -> str:
        return str(self.graph.graph.get("objective", "score"))


@dataclass(frozen=True, slots=True)
class ReportSummary:
    path: Path
    runs: int
    nodes: int
    bytes: int


def load_run(run_dir: Path, name: str | None = None) -> RunReport:
    """Read one run directory (`RunDirError` if it is not one)."""
    with RunStore.open(run_dir) as store:
        graph = build_graph(store, include_source=True)
        variants = store.variants()
        attempts = store.attempts()
        failures = failure_counts(variants, attempts)
        constraints = constraint_counts(variants, attempts, store.checks())
        sources = source_counts(variants, attempts, store.direction)
        episodes = store.episodes()
        created = store.get_meta("created_at")
        front = pareto_front(store)
    start = float(created) if created is not None else min(
        (v.created_at for v in variants), default=0.0)
    return RunReport(name or Path(run_dir).name or str(run_dir), Path(run_dir), graph,
                     tuple(variants), tuple(failures), tuple(episodes), start, tuple(front),
                     constraints, tuple(sources))


def write_report(run_dirs: list[Path], out: Path) -> ReportSummary:
    """Write the report of `run_dirs` to `out` (atomically)."""
    runs = [load_run(path) for path in run_dirs]
    names = [run.name for run in runs]
    if len(set(names)) < len(names):  # two runs/ dirs of the same name elsewhere
        runs = [load_run(path, str(path)) for path in run_dirs]
    page = render_report(runs)
    write_text_atomic(out, page)
    return ReportSummary(out, len(runs), sum(r.graph.number_of_nodes() for r in runs),
                         len(page.encode("utf-8")))


# -- page ----------------------------------------------------------------------------------
def _asset(name: str) -> str:
    """The page's template, style or script: package data in ``lineage/report/``, kept as
    the HTML, CSS and JavaScript files they are."""
    return (files("deepphoenix.lineage") / "report" / name).read_text(encoding="utf-8")


def render_report(runs: list[RunReport]) -> str:
    """The whole HTML page as text."""
    import plotly.offline

    sections = []
    details: dict[str, Any] = {}
    for index, run in enumerate(runs):
        lineage_figure, lineage_details = _lineage_figure(run, index)
        details[str(index)] = lineage_details
        sections.append(_run_section(run, index, lineage_figure))
    comparison = [
        _figure_html(_best_figure(runs, "evaluations"), "best-vs-evaluations"),
        _figure_html(_best_figure(runs, "seconds"), "best-vs-time"),
        _figure_html(_pareto_figure(runs), "pareto"),
    ]
    title = "deepphoenix report: " + ", ".join(run.name for run in runs)
    data = json.dumps(details, separators=(",", ":"), default=str).replace("<", "\\u003c")
    return _asset("page.html").format(
        title=html.escape(title),
        style=_asset("report.css"),
        plotly=plotly.offline.get_plotlyjs(),
        header=_header(runs),
        comparison="\n".join(comparison),
        runs="\n".join(sections),
        data=data,
        script=_asset("report.js"),
    )


def _figure_html(figure: Any, div_id: str, css_class: str = "figure") -> str:
    body = figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                          config={"displaylogo": False, "responsive": True})
    return f'<div class="{css_class}">{body}</div>'


def _header(runs: list[RunReport]) -> str:
    rows = []
    for index, run in enumerate(runs):
        config = run.graph.graph.get("config", {})
        scored = sum(1 for v in run.variants if v.status == VariantStatus.SCORED)
        best = run.graph.graph.get("best")
        best_score = run.graph.nodes[best].get("score") if best in run.graph else None
        cells = [
            f'<a href="#run-{index}">{html.escape(run.name)}</a>',
            html.escape(str(run.graph.graph.get("status", "?"))),
            html.escape(str(config.get("preset", "?"))),
            html.escape(str(config.get("proposer", "?"))),
            html.escape(str(config.get("strategy", "?"))),
            html.escape(f"{run.objective} ({run.direction.word} is better)"),
            str(scored),
            "-" if best_score is None else format_score(best_score),
            str(run.graph.number_of_nodes()),
            (f"{run.constraints.rejected} / {run.constraints.redraws} / "
             f"{run.constraints.lost}") if run.constraints.any else "-",
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = ("run", "status", "preset", "proposer", "strategy", "objective", "scored",
            "best", "lineage nodes", "checked out / redrawn / lost")
    return ("<table class='runs'><thead><tr>" + "".join(f"<th>{h}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _run_section(run: RunReport, index: int, lineage_figure: Any) -> str:
    nodes = run.graph.number_of_nodes()
    parts = [
        f'<section class="run" id="run-{index}"><h2>{html.escape(run.name)}</h2>',
        f'<p class="where">{html.escape(str(run.run_dir.resolve()))}</p>',
        "<h3>Lineage</h3><p class='hint'>Every proposal: variants at their score, rejected "
        "attempts and failures in the grey band on the worse side; the seed → best path in "
        "red. Click a node for its edits, diff and failure.</p>",
        f'<div class="lineage" data-run="{index}" data-expected-nodes="{nodes}" '
        f'data-best="{html.escape(str(run.graph.graph.get("best", "")))}">',
        _figure_html(lineage_figure, f"lineage-{index}"),
        f'<div class="details" id="details-{index}"><p class="hint">No node selected.</p>'
        "</div></div>",
        "<h3>Figure 1: training loss of each episode's model</h3>",
    ]
    training = _training_figure(run)
    parts.append(_figure_html(training, f"training-{index}") if training is not None else
                 "<p class='hint'>No training curves: this run trained no proposer "
                 f"(proposer {html.escape(str(run.graph.graph.get('proposer', '?')))}).</p>")
    parts.append("<h3>Failures by stage and reason</h3>")
    parts.append(_failures_html(run, index))
    if run.sources:
        parts.append("<h3>Proposed by</h3><p class='sources'>"
                     f"{html.escape(describe_sources(list(run.sources)))} (a win: a scored "
                     "candidate that beat the best so far when it finished)</p>")
    if run.constraints.any:
        parts.append("<h3>Constraints</h3><p class='constraints'>"
                     f"{html.escape(run.constraints.describe())}: checked before "
                     "evaluation in a worker (the model built without weights), a rejected "
                     "candidate's slot drawn again.</p>")
    parts.append("<h3>Config</h3>")
    config = {**run.graph.graph.get("config", {}), "objective": run.objective,
              "direction": run.direction.value}
    parts.append(f"<pre class='config'>{html.escape(json.dumps(config, indent=2))}</pre>")
    parts.append("</section>")
    return "\n".join(parts)


# -- lineage -------------------------------------------------------------------------------
def _lineage_figure(run: RunReport, index: int) -> tuple[Any, dict[str, Any]]:
    import plotly.graph_objects as go

    graph = run.graph
    batches = int(graph.graph.get("config", {}).get("batches", 1) or 1)
    layout = layout_lineage(graph, batches)
    position, band = layout.position, layout.band
    seed = graph.graph.get("seed")

    groups, details = _node_groups(run, layout)
    figure = go.Figure()
    _add_edges(figure, graph, position)
    styles = {
        "scored": ("scored", _OK_COLOR, "circle", 9),
        "pruned": ("stopped early (asha; its rung in the hover)", _ATTEMPT_COLOR,
                   "triangle-down-open", 9),
        "failed": ("failed / rejected at evaluation", _FAIL_COLOR, "x", 9),
        "pending": ("not evaluated (run stopped)", _ATTEMPT_COLOR, "circle-open", 8),
        "attempt": ("rejected proposal (no program)", _ATTEMPT_COLOR, "diamond", 7),
    }
    for group, nodes in groups.items():
        if not nodes:
            continue
        label, color, symbol, size = styles[group]
        figure.add_trace(go.Scatter(
            x=[position[n][0] for n in nodes], y=[position[n][1] for n in nodes],
            mode="markers", name=label, meta="lineage-node", customdata=nodes,
            text=[_hover(graph.nodes[n], n, run.objective) for n in nodes],
            hovertemplate="%{text}<extra></extra>",
            marker={"color": color, "symbol": symbol, "size": size,
                    "line": {"width": [2 if graph.nodes[n].get("on_best_path") else 0
                                       for n in nodes], "color": _PATH_COLOR}}))
    best = graph.graph.get("best")
    marks = [(seed, "seed = best" if seed == best else "seed")]
    if best != seed:
        marks.append((best, "best"))
    for node, label in marks:
        if node and node in position:
            figure.add_annotation(x=position[node][0], y=position[node][1], text=label,
                                  showarrow=True, arrowhead=0, ax=18, ay=-18,
                                  font={"color": _PATH_COLOR})
    if any(layout.in_band(n) for n in groups["failed"] + groups["pending"]
           + groups["attempt"] + groups["pruned"]):
        figure.add_hrect(y0=band - 0.04 * layout.spread, y1=band + 0.04 * layout.spread,
                         fillcolor="#eeeeee", line_width=0, layer="below")
    figure.update_layout(
        height=460, margin={"l": 60, "r": 20, "t": 30, "b": 50}, clickmode="event",
        hovermode="closest", template="plotly_white",
        legend={"orientation": "h", "y": -0.18},
        xaxis={"title": f"batch ({batches} per episode)"},
        yaxis={"title": f"{run.objective} ({run.direction.word} is better)"},
    )
    return figure, details


def _node_groups(run: RunReport, layout: Any) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """The lineage's nodes by how they are drawn, and each node's details for the page."""
    graph = run.graph
    parent_of = {v: u for v, (u, _) in layout.proposed_by.items()}
    edits_of = {v: data.get("edits", []) for v, (_, data) in layout.proposed_by.items()}
    episode_of = {v: (data["episode"], data["batch"])
                  for v, (_, data) in layout.proposed_by.items()}
    details: dict[str, Any] = {}
    tracebacks = {v.hash: v.traceback for v in run.variants}
    groups: dict[str, list[str]] = {"scored": [], "pruned": [], "failed": [], "pending": [],
                                    "attempt": []}
    for node, data in graph.nodes(data=True):
        if data.get("kind") == "attempt":
            groups["attempt"].append(node)
        elif data.get("status") in (VariantStatus.SCORED, VariantStatus.PENDING,
                                    VariantStatus.PRUNED):
            groups[str(data["status"])].append(node)
        else:
            groups["failed"].append(node)
        details[node] = _node_details(graph, node, data, parent_of.get(node),
                                      edits_of.get(node, []), episode_of.get(node))
        details[node]["traceback"] = printable(tracebacks.get(node, ""), multiline=True)
    return groups, details


def _add_edges(figure: Any, graph: nx.DiGraph, position: dict[str, tuple[float, float]],
               ) -> None:
    """The proposals as grey lines, and the seed's path to the best drawn over them."""
    import plotly.graph_objects as go

    edge_x: list[float | None] = []
    edge_y: list[float | None] = []
    for u, v in {(u, v) for u, v in graph.edges()}:
        if u in position and v in position:
            edge_x += [position[u][0], position[v][0], None]
            edge_y += [position[u][1], position[v][1], None]
    figure.add_trace(go.Scatter(x=edge_x, y=edge_y, mode="lines", hoverinfo="skip",
                                line={"color": "#d0d0d0", "width": 0.8}, name="proposals",
                                showlegend=False))
    path = [n for n in best_path(graph) if n in position]
    if len(path) > 1:
        figure.add_trace(go.Scatter(
            x=[position[n][0] for n in path], y=[position[n][1] for n in path],
            mode="lines", hoverinfo="skip", line={"color": _PATH_COLOR, "width": 3},
            name="seed → best"))


def _hover(data: dict[str, Any], node: str, objective: str) -> str:
    lines = [html.escape(node)]
    if data.get("score") is not None:
        lines.append(f"{html.escape(objective)} {format_score(data['score'])}")
    if data.get("params"):
        lines.append(f"{data['params'] / 1e6:.3f} M params")
    if data.get("status") and data.get("status") != VariantStatus.SCORED:
        stage = f" at {data['stage']}" if data.get("stage") else ""
        lines.append(html.escape(f"{data['status']}{stage}"))
    return "<br>".join(lines)


def _node_details(graph: nx.MultiDiGraph, node: str, data: dict[str, Any],
                  parent: str | None, edits: list[dict[str, Any]],
                  where: tuple[int, int] | None) -> dict[str, Any]:
    text = data.get("source") if data.get("kind") == "variant" else data.get("text")
    parent_source = graph.nodes[parent].get("source") if parent in graph else None
    diff = ""
    if text is not None and parent_source is not None:
        diff = bundle_diff(parent_source, str(text), f"a/{parent}", f"b/{node}")
    return {
        "hash": node, "kind": data.get("kind"), "status": data.get("status"),
        "score": data.get("score"), "params": data.get("params"), "parent": parent,
        "episode": where[0] if where else None, "batch": where[1] if where else None,
        "edits": [printable(f"{e.get('site')}={e.get('value')!r}") for e in edits],
        "stage": data.get("stage"),
        "reason": printable(data["reason"]) if data.get("reason") else data.get("reason"),
        "diff": printable(diff, multiline=True), "best_path": bool(data.get("on_best_path")),
    }


# -- figure 1 ------------------------------------------------------------------------------
def _training_figure(run: RunReport) -> Any | None:
    import plotly.graph_objects as go

    curves = [(e.episode, e.training) for e in run.episodes if e.training.get("losses")]
    if not curves:
        return None
    figure = go.Figure()
    for episode, training in curves:
        losses = training["losses"][SKIP_STEPS:]
        params = training.get("params")
        label = f"episode {episode}" + (f" ({params / 1e6:.2f} M)" if params else "")
        figure.add_trace(go.Scatter(
            x=list(range(SKIP_STEPS + 1, SKIP_STEPS + 1 + len(losses))), y=losses,
            mode="lines+markers" if len(losses) < 30 else "lines", name=label))
    figure.update_layout(
        height=380, template="plotly_white", margin={"l": 60, "r": 20, "t": 30, "b": 50},
        xaxis={"title": f"training step (first {SKIP_STEPS} omitted)"},
        yaxis={"title": "training loss (code refinement)"})
    return figure


# -- comparisons ---------------------------------------------------------------------------
def _objective_title(runs: list[RunReport]) -> str:
    kinds = {(r.objective, r.direction) for r in runs}
    if len(kinds) == 1:
        objective, direction = kinds.pop()
        return f"best {objective} so far ({direction.word} is better)"
    return "best score so far (each run in its own objective's direction)"


def _best_figure(runs: list[RunReport], axis: str) -> Any:
    import plotly.graph_objects as go

    figure = go.Figure()
    for run in runs:
        curve = best_so_far(list(run.variants), run.direction, run.created_at)
        xs = curve.evaluations if axis == "evaluations" else curve.seconds
        figure.add_trace(go.Scatter(x=list(xs), y=list(curve.best), mode="lines+markers",
                                    line_shape="hv", name=_run_label(run)))
    title = "evaluations" if axis == "evaluations" else "wall time since the run began (s)"
    figure.update_layout(
        height=360, template="plotly_white", margin={"l": 60, "r": 20, "t": 40, "b": 50},
        title={"text": f"Best so far against {title}", "font": {"size": 14}},
        xaxis={"title": title}, yaxis={"title": _objective_title(runs)},
        legend={"orientation": "h", "y": -0.25})
    return figure


def _pareto_figure(runs: list[RunReport]) -> Any:
    import plotly.graph_objects as go

    figure = go.Figure()
    for run in runs:
        points = [(float(d["params"]), float(d["score"]), n)
                  for n, d in run.graph.nodes(data=True)
                  if d.get("score") is not None and d.get("params")]
        label = _run_label(run)
        figure.add_trace(go.Scatter(
            x=[p[0] for p in points], y=[p[1] for p in points], mode="markers",
            name=f"{label}: scored", customdata=[p[2] for p in points], opacity=0.6,
            hovertemplate="%{customdata}<br>%{x:,} params<br>%{y:.4f}<extra></extra>"))
        front = run.front
        figure.add_trace(go.Scatter(
            x=[p.params for p in front], y=[p.score for p in front], mode="lines+markers",
            line_shape="hv", name=f"{label}: Pareto front", customdata=[p.hash for p in front],
            hovertemplate="%{customdata}<br>%{x:,} params<br>%{y:.4f}<extra></extra>"))
    figure.update_layout(
        height=400, template="plotly_white", margin={"l": 60, "r": 20, "t": 40, "b": 50},
        title={"text": "Score against parameter count (fewer parameters and a better score "
                       "win)", "font": {"size": 14}},
        xaxis={"title": "parameters", "type": "log"},
        yaxis={"title": _objective_title(runs).replace("best ", "").replace(" so far", "")},
        legend={"orientation": "h", "y": -0.25})
    return figure


def _run_label(run: RunReport) -> str:
    graph = run.graph.graph
    return f"{run.name} ({graph.get('proposer', '?')}, {graph.get('strategy', '?')})"


def _failures_html(run: RunReport, index: int) -> str:
    if not run.failures:
        return "<p class='hint'>Nothing failed or was rejected.</p>"
    import plotly.graph_objects as go

    stages: dict[str, int] = {}
    for stage, _, count in run.failures:
        stages[stage] = stages.get(stage, 0) + count
    figure = go.Figure(go.Bar(x=list(stages), y=list(stages.values()),
                              marker_color=_FAIL_COLOR))
    figure.update_layout(height=260, template="plotly_white",
                         margin={"l": 50, "r": 20, "t": 20, "b": 40},
                         yaxis={"title": "count"}, xaxis={"title": "stage"})
    rows = "".join(f"<tr><td>{html.escape(stage)}</td><td>{html.escape(printable(reason))}</td>"
                   f"<td>{count}</td></tr>" for stage, reason, count in run.failures)
    return (_figure_html(figure, f"failures-{index}", "figure small")
            + "<table class='failures'><thead><tr><th>stage</th><th>reason</th><th>count</th>"
            f"</tr></thead><tbody>{rows}</tbody></table>")
