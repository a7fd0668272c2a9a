"""The Python API: `search` runs a search and returns its `Study`; `load` opens a run
directory as one. A `Study` gives the best variant, the trials (a list or a pandas
DataFrame), the lineage graph, the Pareto front, the HTML report and the Optuna export,
and `resume` continues an interrupted run. The CLI's `run` goes through `plan_search`
too. Importing this imports no torch; running a search starts workers that do."""

from deepphoenix.study._execute import execute
from deepphoenix.study._search import (
    RUNS_DIR,
    SearchPlan,
    budget_shape,
    new_run_dir,
    plan_search,
    search,
)
from deepphoenix.study._study import Best, Study, Trial, load

__all__ = [
    "RUNS_DIR",
    "Best",
    "SearchPlan",
    "Study",
    "Trial",
    "budget_shape",
    "execute",
    "load",
    "new_run_dir",
    "plan_search",
    "search",
]
