"""`deepphoenix lineage export|show|best` and `deepphoenix plot`."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import click

from deepphoenix.cli._common import SummaryGroup, echo_json, fail, json_option, shown
from deepphoenix.engine._rescore import DEFAULT_TOLERANCE, NOT_REPRODUCED, Rescore, rescore_run
from deepphoenix.errors import ConfigError, RunDirError
from deepphoenix.grammar import format_value
from deepphoenix.lineage import (
    FORMATS,
    best_path,
    describe_sources,
    graph_direction,
)
from deepphoenix.scores import format_score
from deepphoenix.status import VariantStatus
from deepphoenix.study import load

__all__ = ["lineage", "plot"]

RUN_DIR = click.Path(file_okay=False, path_type=Path)


@click.group(cls=SummaryGroup)
def lineage() -> None:
    """Inspect and export a run's lineage graph."""


@lineage.command("export", short_help="Write RUN_DIR's lineage graph or an Optuna study.")
@click.argument("run_dir", type=RUN_DIR)
@click.option("--format", "fmt", type=click.Choice([*sorted(FORMATS), "optuna"]),
              default="json", show_default=True,
              help="json is lossless; graphml/gexf flatten structure to JSON strings; dot is "
                   "for Graphviz; optuna writes an Optuna study (SQLite) that optuna-dashboard "
                   "and optuna.load_study open.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The file to write (for optuna, a new SQLite file: open it as "
                   "sqlite:///OUT).")
@click.option("--no-source", is_flag=True, help="Leave the program texts out.")
@click.option("--force", is_flag=True, help="Replace an existing Optuna study file.")
def export(run_dir: Path, fmt: str, out: Path, no_source: bool, force: bool) -> None:
    """Write RUN_DIR's lineage graph to a file, or its evaluations as an Optuna study (one
    trial per evaluated variant: site values as params, the score in the run's direction,
    failures as failed trials)."""
    study = load(run_dir)
    if fmt == "optuna":
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        written = study.to_optuna(out, force=force)
        states = Counter(t.state for t in written.trials)
        click.echo(f"wrote study {written.study_name!r} to {out}: "
                   f"{_count(states[optuna.trial.TrialState.COMPLETE], 'complete trial')}, "
                   f"{_count(states[optuna.trial.TrialState.FAIL], 'failed trial')} "
                   f"(open with sqlite:///{out})")
        return
    graph = study.graph(include_source=not no_source)
    FORMATS[fmt](graph, out)
    click.echo(f"wrote {_count(graph.number_of_nodes(), 'node')} and "
               f"{_count(graph.number_of_edges(), 'edge')} to {out}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@lineage.command("show")
@click.argument("run_dir", type=RUN_DIR)
@json_option
def show(run_dir: Path, as_json: bool) -> None:
    """The path from the seed to the best variant: edits, scores, parameters."""
    study = load(run_dir)
    graph = study.graph(include_source=False)
    # --fidelity asha: candidates stopped early, by the rung they stopped at
    pruned = Counter(t.stage for t in study.trials if t.status == VariantStatus.PRUNED)
    status = graph.graph.get("status")
    if not graph.graph.get("best"):
        raise _no_variant(run_dir)
    path = best_path(graph)
    steps = []
    for index, node in enumerate(path):
        data = graph.nodes[node]
        step = {"hash": node, "score": data.get("score"), "params": data.get("params")}
        if index:
            edge = next(iter(graph[path[index - 1]][node].values()))
            step.update(episode=edge["episode"], batch=edge["batch"], edits=edge["edits"])
        steps.append(step)
    objective = graph.graph.get("objective", "score")
    direction = graph_direction(graph)
    constraints = study.constraints()
    sources = study.sources()
    if as_json:
        echo_json({"run_dir": str(run_dir), "status": status, "objective": objective,
                   "direction": direction.value, "path": steps,
                   "pruned": dict(sorted(pruned.items())),
                   "constraints": constraints.to_dict(),
                   "sources": [s.to_dict() for s in sources]})
        return
    if status == "interrupted":
        click.echo(f"(run interrupted: best so far; continue it with: deepphoenix run "
                   f"--run-dir {run_dir} --resume)")
    elif status != "finished":
        click.echo(f"(run {status}: best so far)")
    click.echo(f"objective: {objective} ({direction.word} is better)")
    for index, step in enumerate(steps):
        loss = (f"{objective} {format_score(step['score'])}" if step["score"] is not None
                else "not scored")
        params = _params(step["params"]) if step.get("params") else ""
        if index == 0:
            click.echo(f"seed {step['hash']}  {loss}  {params}")
            continue
        edits = shown(", ".join(f"{e['site']}={format_value(e['value'])}"
                                for e in step["edits"]))
        delta = ""
        previous = steps[index - 1]["score"]
        if step["score"] is not None and previous is not None:
            change = step["score"] - previous
            delta = f" ({'+' if change >= 0 else ''}{format_score(change)})"
        click.echo(f"  episode {step['episode']} batch {step['batch']}: {edits}")
        click.echo(f"  -> {step['hash']}  {loss}{delta}  {params}")
    accepted = len(steps) - 1
    click.echo(f"{accepted} accepted refinement{'' if accepted == 1 else 's'} from seed to best")
    if pruned:
        by_rung = ", ".join(f"{n} at {stage}" for stage, n in sorted(pruned.items()))
        click.echo(f"stopped early (asha): {by_rung}; only full evaluations are compared")
    if constraints.any:
        click.echo(f"constraints: {constraints.describe()}")
    if sources:
        click.echo(f"proposed by: {describe_sources(sources)}")


@lineage.command("best")
@click.argument("run_dir", type=RUN_DIR)
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR", help="Write every file of the best candidate into DIR, at its "
              "path (a run over several files needs it).")
@click.option("--force", is_flag=True, help="Overwrite files already in --out.")
def best(run_dir: Path, out: Path | None, force: bool) -> None:
    """Print the best source found so far, rendered from the seed and its recorded edits;
    or, with --out, write each of its files there."""
    found = load(run_dir).best
    if out is not None:
        for path in found.write(out, force=force):
            click.echo(shown(str(path)))
        return
    if len(found.files) > 1:
        raise ConfigError(f"{run_dir}: the best candidate is {len(found.files)} files "
                          f"({', '.join(found.files)}); write them with --out DIR")
    # Rendered from the seed and the recorded values; on a terminal, a string value's
    # control characters are shown, not acted on (redirected, the file is exact).
    source = found.source
    click.echo(shown(source, multiline=True) if _terminal() else source, nl=False)


@lineage.command("verify")
@click.argument("run_dir", type=RUN_DIR)
@click.option("--rescore", "top", type=click.IntRange(min=1), default=None, metavar="K",
              help="Also evaluate the K best-scored variants again in a fresh sandbox "
                   "worker and flag each score that does not reproduce.")
@click.option("--tolerance", type=click.FloatRange(min=0), default=DEFAULT_TOLERANCE,
              show_default=True, help="--rescore: the relative difference a re-score may "
                                      "have from the stored score.")
@json_option
def verify(run_dir: Path, top: int | None, tolerance: float, as_json: bool) -> None:
    """Re-render every stored source from the seed and the recorded edits, and check every
    stored score against what the run database itself records about it (a built-in
    objective's losses, asha's rungs, the run's chosen best); list each that does not
    match (exit 1 when any does). With --rescore K, evaluate the K best again: a score
    that does not reproduce exits 1; one whose re-scores disagree with each other is
    reported as nondeterministic."""
    checked, mismatches = load(run_dir).verify()
    rescored: list[Rescore] = []
    if top is not None:
        def said(found: Rescore) -> None:
            if not as_json:
                click.echo(shown(f"{found.hash}: re-scored: {found.verdict} "
                                 f"({found.reason})"))

        rescored = rescore_run(run_dir, top, tolerance, on_done=said)
    if as_json:
        echo_json({"run_dir": str(run_dir), "checked": checked,
                   "mismatches": [{"hash": m.hash, "reason": m.reason, "kind": m.kind}
                                  for m in mismatches],
                   "rescored": [r.to_dict() for r in rescored]})
    else:
        for m in mismatches:
            click.echo(shown(f"{m.hash}: {m.reason}"))
        click.echo(f"{checked} stored source{'' if checked == 1 else 's'} re-rendered and "
                   f"scores checked, {len(mismatches)} "
                   f"mismatch{'' if len(mismatches) == 1 else 'es'}")
    sources = [m for m in mismatches if m.kind == "source"]
    scores = [m for m in mismatches if m.kind != "source"]
    wrong = [r for r in rescored if r.verdict == NOT_REPRODUCED]
    problems = []
    if sources:
        problems.append(f"{len(sources)} of {checked} stored sources are not what the seed "
                        "and their recorded edits render: the run database was changed; do "
                        "not trust its stored sources")
    if scores:
        verb = "s contradict" if len(scores) > 1 else " contradicts"
        problems.append(f"{len(scores)} stored score{verb} the run's own records: the run "
                        "database was changed")
    if wrong:
        problems.append(f"{len(wrong)} of {len(rescored)} re-scored variants do not "
                        "reproduce their stored score")
    if problems:
        fail(f"{run_dir}: " + "; ".join(problems))


@lineage.command("pareto")
@click.argument("run_dir", type=RUN_DIR)
@json_option
def pareto(run_dir: Path, as_json: bool) -> None:
    """The variants on the score / parameter-count Pareto front, fewest parameters first:
    none of them is beaten on both by another variant."""
    study = load(run_dir)
    front = study.pareto()
    objective = {"name": study.objective, "direction": study.direction.value}
    if not front:
        raise RunDirError(f"{run_dir}: no scored variant with a parameter count yet")
    if as_json:
        echo_json({"run_dir": str(run_dir), "objective": objective["name"],
                   "direction": objective["direction"],
                   "front": [{"hash": p.hash, "score": p.score, "params": p.params}
                             for p in front]})
        return
    for point in front:
        click.echo(f"{point.hash}  {objective['name']} {format_score(point.score)}  "
                   f"{_params(point.params)}")


def _params(count: int) -> str:
    """A parameter count as read: millions from 10,000 up, else the count (a 16 x 16
    quine has 256, which "0.00 M" would hide)."""
    return f"{count / 1e6:.2f} M params" if count >= 10_000 else f"{count:,} params"


def _no_variant(run_dir: Path) -> RunDirError:
    return RunDirError(f"{run_dir}: no variant recorded yet (the run stopped before its "
                       "seed was stored); resume it or start a new one")


@click.command(short_help="Draw Figure 1 and the lineage picture (PNG or SVG).")
@click.argument("run_dir", type=RUN_DIR)
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for the pictures [default: RUN_DIR/plots].")
@click.option("--format", "fmt", type=click.Choice(["png", "svg"]), default="png",
              show_default=True, help="Picture format.")
def plot(run_dir: Path, out: Path | None, fmt: str) -> None:
    """Draw Figure 1 (each episode's training loss, first 3 steps omitted) and the lineage
    picture (the seed-to-best path highlighted, rejected attempts faint)."""
    study = load(run_dir)
    if not any(t.status == VariantStatus.SCORED for t in study.trials):
        raise RunDirError(f"{run_dir}: nothing is scored yet, so there is nothing to plot; "
                          "resume the run or start a new one")
    written = study.plots(out or run_dir / "plots", fmt)
    for path in written:
        click.echo(str(path))


def _terminal() -> bool:
    return bool(sys.stdout.isatty())
