"""`Study`: one run directory as Python objects — its best variant, its trials (a list or a
pandas DataFrame), its lineage graph, the Pareto front, the HTML report, the Optuna export,
the pictures, a check of its stored sources — and `Study.resume` to continue it. The CLI's
``lineage``, ``plot`` and ``run --resume`` go through it.

Every read opens the run database read-only for the length of the call, so a study of a
run that is still going (in another process or notebook) reads what is recorded so far.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepphoenix.engine import Event, Run, RunConfig, RunSummary
from deepphoenix.engine._render import (
    Mismatch,
    render_files,
    render_mismatches,
    stored_paths,
    stored_seed,
)
from deepphoenix.engine._rescore import score_mismatches
from deepphoenix.errors import RunDirError
from deepphoenix.lineage import (
    ConstraintCounts,
    ParetoPoint,
    SourceCount,
    best_hash,
    build_graph,
    constraint_counts,
    pareto_front,
    plot_lineage,
    plot_training,
    run_state,
    source_counts,
    write_optuna,
    write_report,
)
from deepphoenix.mutator import bundle_diff, bundle_text
from deepphoenix.objectives import Direction
from deepphoenix.status import VariantStatus
from deepphoenix.store import RunStore
from deepphoenix.store_io import write_text_atomic
from deepphoenix.study._execute import execute

if TYPE_CHECKING:
    import networkx as nx
    import optuna
    import pandas

__all__ = ["Best", "Study", "Trial", "load"]


@dataclass(frozen=True, slots=True)
class Best:
    """The best variant so far, and how it differs from the seed."""

    hash: str
    source: str
    score: float | None  # the objective's value (None: nothing scored yet)
    params: dict[str, Any]  # every site's value (as Optuna's `best_params`)
    model_parameters: int | None  # the model's parameter count, when it built one
    edits: dict[str, Any]  # the sites whose value differs from the seed's
    diff: str  # a unified diff of the seed's source to this one ('' for the seed itself);
    #            for several files, file by file
    files: dict[str, str] = field(default_factory=dict)  # each file (path: text); a run over
    #                    several files holds them all, one file is named by its project path

    def write(self, folder: str | Path, force: bool = False) -> list[Path]:
        """Write every file of the best variant into `folder`, at its path there; a file
        already there is a `RunDirError` unless `force`. The files written."""
        out = Path(folder)
        targets = [(out / rel, text) for rel, text in self.files.items()]
        there = [str(t) for t, _ in targets if t.exists()]
        if there and not force:
            raise RunDirError(f"{there[0]} exists; pass --force to overwrite "
                              f"{'it' if len(there) == 1 else f'the {len(there)} files'}")
        for target, text in targets:
            write_text_atomic(target, text)
        return [t for t, _ in targets]


@dataclass(frozen=True, slots=True)
class Trial:
    """One evaluated (or pending) variant. `parent` is the variant it was proposed from
    (None for the seed); `episode`/`batch` where it was first proposed."""

    number: int
    hash: str
    status: VariantStatus  # scored | failed | rejected | pruned | pending (a str too)
    score: float | None
    params: dict[str, Any]  # site values
    parent: str | None
    episode: int
    batch: int | None
    stage: str  # where a failure happened (build, smoke, fewshot, objective, ...)
    reason: str
    model_parameters: int | None
    created_at: float  # unix time it was first proposed
    scored_at: float | None  # unix time its evaluation finished
    seconds: float | None  # wall time of its evaluation, in the worker
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def rung(self) -> Any:
        """The fidelity rung it reached, when the run used one (else None)."""
        return self.metrics.get("rung")


class Study:
    """A run directory, read through the run database. Make one with `deepphoenix.search`
    (a new run) or `deepphoenix.load` (an existing one)."""

    def __init__(self, run_dir: str | Path, summary: RunSummary | None = None) -> None:
        RunStore.open(Path(run_dir)).close()  # RunDirError, as given, if it holds no run
        self.run_dir = Path(run_dir).resolve()
        self.given = Path(run_dir)  # as given, for messages
        self.summary = summary  # the summary of the last `search`/`resume` in this process

    def __repr__(self) -> str:
        return f"Study({str(self.run_dir)!r}, status={self.status!r})"

    def _store(self) -> RunStore:
        return RunStore.open(self.run_dir)

    # -- what the run is -------------------------------------------------------------------
    @property
    def config(self) -> RunConfig:
        """The run's resolved config, as stored."""
        with self._store() as store:
            return RunConfig.from_dict(store.get_meta("config", {}))

    @property
    def objective(self) -> str:
        """The objective's name (``fewshot``, ``score.py:fn``, ``__main__:fn``)."""
        with self._store() as store:
            return str(store.objective["name"])

    @property
    def direction(self) -> Direction:
        """Whether a lower or a higher score is better."""
        with self._store() as store:
            return store.direction

    @property
    def status(self) -> str:
        """``finished``, ``running`` (another process holds the run) or ``interrupted``."""
        with self._store() as store:
            return run_state(self.run_dir, store.get_meta("status"))

    @property
    def evaluations(self) -> int:
        """Evaluations finished so far (scored or failed), the seed's included."""
        with self._store() as store:
            return store.evaluations_done()

    # -- results ---------------------------------------------------------------------------
    @property
    def best(self) -> Best:
        """The best variant so far: the finished run's, else the last finished batch's,
        else the seed's."""
        with self._store() as store:
            found = best_hash(store)
            variants = store.variants()
            row = store.variant(found) if found else None
            if row is None or not variants:
                raise RunDirError(f"{self.given}: no variant recorded yet (the run stopped "
                                  "before its seed was stored); resume it or start a new one")
            seed_program = stored_seed(store)
            files = render_files(seed_program, row, stored_paths(store))  # never stored text
        source = bundle_text(files)
        seed = variants[0]
        edits = {k: v for k, v in row.values.items() if seed.values.get(k) != v}
        diff = bundle_diff(seed_program.text, source, "seed", row.hash[:12])
        params = row.metrics.get("params")
        return Best(row.hash, source, row.score, dict(row.values),
                    params if isinstance(params, int) else None, edits, diff, dict(files))

    @property
    def trials(self) -> list[Trial]:
        """Every variant the run recorded, in the order it was first proposed; the seed
        is trial 0."""
        with self._store() as store:
            variants = store.variants()
            attempts = store.attempts()
        first: dict[str, Any] = {}
        for attempt in attempts:
            if attempt.child is not None and attempt.child not in first:
                first[attempt.child] = attempt
        trials = []
        for number, v in enumerate(variants):
            origin = first.get(v.hash)
            params = v.metrics.get("params")
            seconds = v.metrics.get("wall_seconds")
            trials.append(Trial(
                number=number, hash=v.hash, status=v.status, score=v.score,
                params=dict(v.values), parent=origin.parent if origin else None,
                episode=origin.episode if origin else (v.first_episode or 0),
                batch=origin.batch if origin else None, stage=v.stage, reason=v.reason,
                model_parameters=params if isinstance(params, int) else None,
                created_at=v.created_at, scored_at=v.scored_at,
                seconds=float(seconds) if isinstance(seconds, int | float) else None,
                metrics=dict(v.metrics)))
        return trials

    def trials_dataframe(self) -> pandas.DataFrame:
        """The trials as a pandas DataFrame, one row per variant: number, hash, status,
        score, parent, episode, batch, rung, stage, reason, model_parameters, created_at,
        scored_at, seconds, and one ``params_<site>`` column per site (as Optuna's)."""
        import pandas

        rows = []
        for t in self.trials:
            row: dict[str, Any] = {
                "number": t.number, "hash": t.hash, "status": t.status, "score": t.score,
                "parent": t.parent, "episode": t.episode, "batch": t.batch, "rung": t.rung,
                "stage": t.stage, "reason": t.reason, "model_parameters": t.model_parameters,
                "created_at": t.created_at, "scored_at": t.scored_at, "seconds": t.seconds}
            row.update({f"params_{site}": _cell(value) for site, value in t.params.items()})
            rows.append(row)
        return pandas.DataFrame(rows).set_index("number") if rows else pandas.DataFrame()

    @property
    def lineage(self) -> nx.MultiDiGraph:
        """The lineage graph (a networkx MultiDiGraph, so also a DiGraph): variants and
        failed attempts as nodes, proposals as edges, the seed-to-best path marked."""
        return self.graph()

    def graph(self, *, include_source: bool = True) -> nx.MultiDiGraph:
        """`lineage`, optionally without the program texts (a smaller export)."""
        with self._store() as store:
            return build_graph(store, include_source=include_source)

    def verify(self) -> tuple[int, list[Mismatch]]:
        """Re-render every stored source from the seed and its recorded values: how many
        were checked, and those that do not match (a changed run database)."""
        with self._store() as store:
            checked, found = render_mismatches(store)
            return checked, found + score_mismatches(store)[1]

    def plots(self, out: str | Path | None = None, fmt: str = "png") -> list[Path]:
        """Draw Figure 1 (each episode's training loss; only when the run trained a model)
        and the lineage picture into `out` (default: the run's ``plots/``), as PNG or SVG;
        the files written."""
        folder = Path(out) if out is not None else self.given / "plots"
        written = []
        with self._store() as store:
            if plot_training(store, folder / f"figure1.{fmt}"):
                written.append(folder / f"figure1.{fmt}")
            graph = build_graph(store, include_source=False)
        batches = int(graph.graph["config"].get("batches", 1))
        plot_lineage(graph, folder / f"lineage.{fmt}", batches)
        written.append(folder / f"lineage.{fmt}")
        return written

    def constraints(self) -> ConstraintCounts:
        """What the run's constraints (``max_params``, ``constraint``) cost: candidates
        rejected before evaluation, slots drawn again and slots lost."""
        with self._store() as store:
            return constraint_counts(store.variants(), store.attempts(), store.checks())

    def sources(self) -> list[SourceCount]:
        """Per drawer of the proposer's pool (``learned``: ``t5``, ``gp``, ``draw``): its
        candidates proposed, scored and winning (beating the best so far); empty for a
        proposer with one drawer."""
        with self._store() as store:
            return source_counts(store.variants(), store.attempts(), store.direction)

    def pareto(self) -> list[ParetoPoint]:
        """The score / parameter-count Pareto front, fewest parameters first."""
        with self._store() as store:
            return pareto_front(store)

    def report(self, path: str | Path = "report.html") -> Path:
        """Write the self-contained HTML report of this run to `path`; the path."""
        out = Path(path)
        write_report([self.run_dir], out)
        return out

    def to_optuna(self, path: str | Path, force: bool = False) -> optuna.Study:
        """Write the evaluations as an Optuna study to the SQLite file `path` (a
        `RunDirError` if it exists, unless `force`) and return it, loaded."""
        import optuna

        out = Path(path)
        done = write_optuna(self.run_dir, out, force=force)
        return optuna.load_study(study_name=done.study_name, storage=f"sqlite:///{out}")

    # -- continuing ------------------------------------------------------------------------
    def resume(self, *, quiet: bool = False, on_event: Callable[[Event], None] | None = None,
               **placement: Any) -> Study:
        """Continue an interrupted run where it stopped (a finished one returns at once).
        `placement` may change where jobs run (executor, workers, threads, ...), never
        what they compute. Returns this study."""
        self.summary = execute(self.continuation(**placement), quiet=quiet,
                               on_event=on_event)
        return self

    def continuation(self, **placement: Any) -> Run:
        """The run wired to continue where it stopped, its directory locked, not started:
        `resume` in two steps, for a caller that reads the resolved config (`Run.config`)
        before `execute` runs it (the CLI's ``run --resume``)."""
        return Run(self.run_dir, resume=True, placement=placement or None)


def _cell(value: Any) -> Any:
    """A site value as a DataFrame cell: lists and mappings as text, so the column is
    hashable and sortable."""
    return repr(value) if isinstance(value, list | dict | tuple) else value


def load(run_dir: str | Path) -> Study:
    """Open a finished, running or interrupted run directory."""
    return Study(run_dir)
