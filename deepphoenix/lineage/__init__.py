"""The lineage graph of a run and its exports: node-link JSON (lossless), GraphML and GEXF
(structured attributes as JSON strings), DOT, an Optuna study,
PNG pictures, and the HTML report."""

from deepphoenix.lineage._dot import to_dot, write_dot
from deepphoenix.lineage._gexf import read_gexf, write_gexf
from deepphoenix.lineage._graph import best_hash, best_path, build_graph, graph_direction
from deepphoenix.lineage._graphml import read_graphml, write_graphml
from deepphoenix.lineage._json import read_json, write_json
from deepphoenix.lineage._optuna import OptunaExport, run_grammar, write_optuna
from deepphoenix.lineage._pareto import ParetoPoint, pareto_front
from deepphoenix.lineage._plot import SKIP_STEPS, plot_lineage, plot_training
from deepphoenix.lineage._report import ReportSummary, write_report
from deepphoenix.lineage._state import lock_held, run_state
from deepphoenix.lineage._summary import (
    ConstraintCounts,
    SourceCount,
    constraint_counts,
    describe_sources,
    source_counts,
)

FORMATS = {"json": write_json, "graphml": write_graphml, "gexf": write_gexf, "dot": write_dot}

__all__ = [
    "FORMATS",
    "SKIP_STEPS",
    "ConstraintCounts",
    "OptunaExport",
    "ParetoPoint",
    "ReportSummary",
    "SourceCount",
    "best_hash",
    "best_path",
    "build_graph",
    "constraint_counts",
    "describe_sources",
    "graph_direction",
    "lock_held",
    "pareto_front",
    "plot_lineage",
    "plot_training",
    "read_gexf",
    "read_graphml",
    "read_json",
    "run_grammar",
    "run_state",
    "source_counts",
    "to_dot",
    "write_dot",
    "write_gexf",
    "write_graphml",
    "write_json",
    "write_optuna",
    "write_report",
]
