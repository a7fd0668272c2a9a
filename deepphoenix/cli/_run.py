"""`deepphoenix run` and `deepphoenix evaluate`."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import click

from deepphoenix.cli._common import (
    DEVICES,
    EXIT_INTERRUPTED,
    echo_json,
    fail,
    grammar_option,
    json_option,
    load_program,
    require_device,
)
from deepphoenix.cli._display import RunDisplay, label, score_line, shown
from deepphoenix.cli._progress import Reporter, _clock
from deepphoenix.engine import (
    FIDELITIES,
    PLACEMENT,
    PRESETS,
    TASK_NAMES,
    TRAIN_ON,
    Run,
    RunConfig,
    RunData,
    eval_settings,
    lone_evaluator,
    needs_pairs,
    prepare_run_data,
    preset,
    strategy_names,
)
from deepphoenix.errors import ConfigError, RunDirError
from deepphoenix.evaluator import Evaluator
from deepphoenix.executor import LocalExecutor, executor_names
from deepphoenix.mutator import read_source
from deepphoenix.objectives import is_command, objective_names, resolve_objective
from deepphoenix.proposers import proposer_names
from deepphoenix.sandbox import isolation_summary
from deepphoenix.scores import format_score
from deepphoenix.seeds import CODET5_DIR, codet5_config
from deepphoenix.store import DB_NAME
from deepphoenix.store_io import write_text_atomic
from deepphoenix.study import RUNS_DIR, execute, load, plan_search

__all__ = ["evaluate", "run", "write_plots"]

def _per_preset(field: str) -> str:
    """The help text's default of an option a preset decides."""
    values = ", ".join(f"{name} {getattr(preset(name), field)}" for name in sorted(PRESETS))
    return f"  [default: per preset: {values}]"


def _change(before: float | None, after: float | None) -> str:
    if not before or after is None:
        return ""
    return f"; {100 * (after / before - 1):+.1f}%"


def _latest_unfinished() -> Path:
    if RUNS_DIR.is_dir():
        runs = sorted((p for p in RUNS_DIR.iterdir() if (p / DB_NAME).exists()),
                      key=lambda p: (p / DB_NAME).stat().st_mtime, reverse=True)
        for path in runs:
            if load(path).status != "finished":
                return path
    raise RunDirError("no unfinished run under ./runs to resume; pass --run-dir DIR")


def write_plots(run_dir: Path, out: Path, fmt: str = "png") -> list[Path]:
    """Figure 1 (when the run trained models) and the lineage picture."""
    return load(run_dir).plots(out, fmt)


def _runner(ctx: click.Context, preset_name: str, run_dir: Path | None, resume: bool,
            force: bool, settings: dict[str, Any]) -> tuple[Run, RunConfig]:
    """The run to execute and its config: a resumed one (which keeps its stored config) or
    a new one planned from the preset and the given settings."""
    if resume:
        run_dir = run_dir or _latest_unfinished()
        placement = {k: v for k, v in settings.items() if k in PLACEMENT}
        given = [k for k in settings if k not in placement]
        if ctx.get_parameter_source("preset_name") is click.core.ParameterSource.COMMANDLINE:
            given.append("preset")
        if given:
            raise ConfigError(f"a resumed run keeps its stored config; drop "
                              f"{', '.join(sorted(given))}")
        runner = load(run_dir).continuation(**placement)
        config = runner.config
        try:
            require_device(config.device)
        except BaseException:
            runner.close()
            raise
    else:
        named = {k: settings.pop(k) for k in ("objective", "grammar", "proposer", "strategy",
                                              "direction", "constraint") if k in settings}
        plan = plan_search(preset_name=preset_name, **named, **settings)
        config = plan.config
        require_device(config.device)  # before any run directory is made
        runner = plan.start(run_dir, force=force)
    return runner, config


@click.command()
@click.option("--preset", "preset_name", type=click.Choice(sorted(PRESETS)), default="cpu",
              show_default=True, help="smoke (CI), cpu (a few minutes), gpt-cpu (a GPT on "
              "Python source, a few minutes), quine-cpu (neural quines, a few minutes), "
              "paper (a GPU).")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the run lives [default: runs/<preset>-<time>].")
@click.option("--resume", is_flag=True,
              help="Continue the run in --run-dir (default: the latest unfinished one).")
@click.option("--proposer", type=click.Choice(proposer_names()), default=None,
              help="t5: a T5 trained on the program's refinements each episode (paper); "
                   "learned: a T5 that also learns from the run's scores and ranks a wide "
                   "sample with a surrogate; tpe, gp: Optuna's TPE, GP-BO over the sites; "
                   "random: grammar draws (baseline); random-gp, random-gp-multi, t5-only: "
                   "learned without its T5 or its surrogate (ablations)."
                   + _per_preset("proposer"))
@click.option("--proposer-source", type=str, default=None, metavar="self|NAME|FILE",
              help="The source that defines the proposing T5: 'self' (the program's own "
                   "model, the paper), a built-in seed or a file. The learned proposer "
                   "warm-starts one fixed model: the run's seed program's unless a seed or "
                   "file is named.  [default: self for the refinement task, else tiny]")
@click.option("--proposer-init", type=click.Path(path_type=str), default=None, metavar="MODEL",
              help="Start the learned proposer from a model `deepphoenix proposer pretrain` "
                   "wrote (on earlier runs) instead of from scratch; `builtin`: the one that "
                   "ships, pretrained on every built-in program. The run keeps a copy.")
@click.option("--objective", type=str, default=None,
              metavar="NAME|PATH.py:FN|module:FN|cmd:COMMAND",
              help=f"How a candidate is scored: {', '.join(objective_names())} (built-in "
                   "losses), your function FN(program, ctx) returning a number or a "
                   "mapping with 'score', or cmd:COMMAND, your project's own command run in "
                   "the candidate's workspace (with --metric).  [default: fewshot]")
@click.option("--metric", type=str, default=None, metavar="REGEX|json:PATH:KEY",
              help="cmd: where the score is read: the last match of REGEX (one group, the "
                   "value; or groups named value and step) on the command's output, or KEY "
                   "of the JSON file PATH it writes.")
@click.option("--with", "with_sources", type=str, multiple=True, metavar="FILE",
              help="Another file of the candidate (a config, a training script; repeat for "
                   "more): one grammar over --source and these, each edit written into the "
                   "file that binds the site (a later file overrides an earlier one).")
@click.option("--project", type=click.Path(file_okay=False, path_type=str), default=None,
              metavar="DIR",
              help="The folder each candidate's workspace is a copy of, with the candidate's "
                   "files in place (.git left out; the run directory must lie outside).  "
                   "[default: the folder of --source, for a command objective or --with]")
@click.option("--link-over", "link_over_mb", type=click.FloatRange(min=0), default=None,
              metavar="MB",
              help="Project files larger than this (data sets, checkpoints) are linked "
                   "read-only into each workspace, never copied.  [default: 1]")
@click.option("--direction", type=str, default=None, metavar="minimize|maximize",
              help="Whether a lower or a higher score is better.  [default: the objective's "
                   "own, else minimize]")
@click.option("--task", type=click.Choice(TASK_NAMES), default=None,
              help="The data of the built-in objectives: refinement (seq2seq, the paper) or "
                   "code-lm (byte-level language modelling of Python source).")
@click.option("--max-params", type=click.IntRange(min=1), default=None,
              help="Reject a candidate whose model has more parameters, before it takes "
                   "an evaluation slot (counted without weights, on torch's meta device); "
                   "its slot is drawn again.")
@click.option("--constraint", type=str, default=None, metavar="PATH.py:FN|module:FN",
              help="Your rule FN(program, ctx) -> reason or None, checked in a sandboxed "
                   "worker before a candidate is evaluated (program built on the meta "
                   "device; ctx.values, ctx.params); a candidate it rejects is drawn again.")
@click.option("--constraint-rounds", type=click.IntRange(min=0, max=64), default=None,
              help="Draws per slot whose candidate breaks --max-params or --constraint "
                   "(0: check --max-params only when a candidate is evaluated).  "
                   "[default: 8]")
@click.option("--executor", type=click.Choice(executor_names()), default=None,
              help="Where sandboxed jobs run: local (this machine) or ray (a Ray cluster; "
                   "pip install 'deepphoenix[ray]').  [default: local]")
@click.option("--ray-address", type=str, default=None, metavar="HOST:PORT",
              help="ray: the cluster's head.  [default: start a local Ray instance, or join "
                   "the one RAY_ADDRESS names]")
@click.option("--gpus-per-eval", type=click.FloatRange(min=0), default=None,
              help="ray: GPUs each evaluation worker reserves; a fraction shares one GPU "
                   "(0.25: four candidates at once).  [default: 0]")
@click.option("--train-on", type=click.Choice(TRAIN_ON), default=None,
              help="ray: where the proposer trains and samples; gpu reserves one GPU.  "
                   "[default: cpu]")
@click.option("--strategy", type=click.Choice(strategy_names()), default=None,
              help="greedy (paper), best-of-n (every candidate from the seed) or async (no "
                   "batch barrier: one candidate per free worker, parent by a tournament "
                   "among the C best).  [default: greedy]")
@click.option("--fidelity", type=click.Choice(FIDELITIES), default=None,
              help="full (every candidate pays the whole budget) or asha (rungs growing by "
                   "--eta; the top 1/eta of a rung go up).  [default: full]")
@click.option("--eta", type=int, default=None,
              help="asha: each rung's budget is eta x the one below.  [default: 3]")
@click.option("--min-resource", type=int, default=None, metavar="N",
              help="asha: rung 0's rows (a user objective: steps).  [default: the full "
                   "budget / eta^2, three rungs]")
@click.option("--max-steps", type=int, default=None, metavar="N",
              help="asha with your own objective: the steps a full evaluation reports "
                   "through ctx.report (ctx.should_stop() says when a rung's share is "
                   "spent).")
@click.option("--time-limit", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS",
              help="async: start no candidate after this many seconds (running ones "
                   "finish); --resume continues the run.")
@click.option("--source", "seed_source", type=str, default=None,
              help="Seed source: a built-in seed name (paper, tiny, tiny-train, gpt, "
                   "quine-*; `deepphoenix seed --list`) or a file.")
@grammar_option(default=None)
@click.option("--format", "format", type=click.Choice(["source", "edits"]), default=None,
              help="What the model writes.")
@click.option("--vocabulary", type=click.Choice(["shared", "run"]), default=None,
              help="The tokenizer of a proposer that reads the program view (learned, "
                   "t5-only): shared (the one shipped, trained on the standard library "
                   "and every built-in grammar's views) or run (a BPE trained on this "
                   "run's pairs).  [default: shared]")
@click.option("--unconstrained", is_flag=True, default=False,
              help="Sample freely, as the paper did (default: constrained decoding).")
@click.option("--seed", "seed", type=int, default=None,
              help="Run seed: every random draw derives from it." + _per_preset("seed"))
@click.option("--device", type=DEVICES, default=None,
              help="Where models train: auto uses CUDA when present." + _per_preset("device"))
@click.option("--episodes", type=click.IntRange(min=1), default=None,
              help="Episodes (a proposer training stage, then the batches)."
                   + _per_preset("episodes"))
@click.option("--batches", type=click.IntRange(min=1), default=None,
              help="Greedy steps per episode." + _per_preset("batches"))
@click.option("--candidates", type=click.IntRange(min=1), default=None,
              help="Candidates proposed per batch." + _per_preset("candidates"))
@click.option("--fewshot-samples", type=click.IntRange(min=1), default=None,
              help="Rows of the one-epoch run that scores a candidate."
                   + _per_preset("fewshot_samples"))
@click.option("--train-epochs", type=click.IntRange(min=1), default=None,
              help="Epochs of each proposer training stage." + _per_preset("train_epochs"))
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Sampling temperature of the proposer." + _per_preset("temperature"))
@click.option("--draw-rounds", type=click.IntRange(min=1), default=None,
              help="Draws per batch for candidates that repeat another (1: as the paper).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Evaluation worker processes." + _per_preset("workers"))
@click.option("--memory-limit", "memory_limit_gb", type=click.FloatRange(min=0), default=None,
              metavar="GB",
              help="Address-space limit of each CPU worker in GB (0: none).  [default: 80% "
                   "of the machine's memory divided among the workers]")
@click.option("--disk-limit", "disk_limit_gb", type=click.FloatRange(min=0), default=None,
              metavar="GB",
              help="What each worker's workspace may hold, and the largest file a worker "
                   "may write, in GB (0: none).  [default: 10]")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch threads per evaluation worker (with ray: the CPUs each reserves).  "
                   "[default: this machine's cores / --workers]")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds per candidate evaluation before its worker is killed."
                   + _per_preset("timeout"))
@click.option("--train-timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds per proposer training stage before its worker is killed "
                   "(the episode then proposes at random).")
@click.option("--no-plots", is_flag=True, help="Skip drawing the plots at the end.")
@click.option("--force", is_flag=True,
              help="Start the run in a --run-dir that holds files of yours (none of them is "
                   "ever overwritten).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON event per line.")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress on stderr (warnings only); the summary still prints.")
@click.pass_context
def run(ctx: click.Context, preset_name: str, run_dir: Path | None, resume: bool,
        no_plots: bool, force: bool, as_json: bool, quiet: bool, unconstrained: bool,
        **options: Any) -> None:
    """Run the self-reprogramming loop (paper, Algorithm 1) and record its lineage.

    Every attempt goes to RUN_DIR/run.sqlite as it happens; Ctrl-C or a crash loses no
    finished evaluation, and --resume continues where the run stopped.
    """
    # Options are named after RunConfig fields: the given ones override the preset's.
    settings = {k: v for k, v in options.items() if v is not None and v != ()}
    if unconstrained:
        settings["constrained"] = False
    runner, config = _runner(ctx, preset_name, run_dir, resume, force, settings)
    run_dir = runner.run_dir if run_dir is None else run_dir
    reporter = Reporter("json" if as_json else "quiet" if quiet else "auto")
    display = RunDisplay(reporter, config)
    try:
        summary = execute(runner, quiet=True, on_event=display)
    except KeyboardInterrupt:
        reporter.done()
        done = load(run_dir).evaluations
        saved = f"{done} evaluation{' is' if done == 1 else 's are'} saved"
        click.echo(f"interrupted: {saved} in {run_dir}; resume with: "
                   f"deepphoenix run --run-dir {run_dir} --resume", err=True)
        raise SystemExit(EXIT_INTERRUPTED) from None
    finally:
        reporter.done()
    several = summary.best_path.is_dir()  # a candidate of several files: best/
    standalone = None if several else _write_standalone(run_dir, summary.best_path,
                                                        config.vocab_size)
    if summary.nothing_evaluated:  # not a search: say why, and exit non-zero
        if as_json:
            click.echo(json.dumps({"event": "summary", **summary.to_dict(), "plots": []}))
        else:
            click.echo(f"run directory: {shown(run_dir)}")
            click.echo(f"lineage:       deepphoenix lineage show {shown(run_dir)}")
        fail(summary.nothing_evaluated)
    plots = [] if no_plots else write_plots(run_dir, run_dir / "plots")
    if as_json:
        click.echo(json.dumps({"event": "summary", **summary.to_dict(),
                               "plots": [str(p) for p in plots]}))
        return
    best = score_line(label(summary.objective), summary.best_score, summary.best_params)
    seed = score_line("seed", summary.seed_score, summary.seed_params)
    click.echo(f"finished in {_clock(summary.seconds)}: {summary.evaluations} evaluations, "
               f"best {best} ({seed}{_change(summary.seed_score, summary.best_score)})"
               + (f"; re-scored: {summary.rescore}" if summary.rescore else ""))
    click.echo(f"run directory: {shown(run_dir)}")
    if standalone is None:
        files = sorted(str(p.relative_to(summary.best_path))
                       for p in summary.best_path.rglob("*") if p.is_file())
        click.echo(f"best files:    {shown(summary.best_path)}/ ({', '.join(files)})")
    elif is_command(config.objective):
        click.echo(f"best source:   {shown(summary.best_path)}")
    else:
        click.echo(f"best source:   {shown(summary.best_path)} (on its own: python "
                   f"{shown(standalone)})")
    if plots:
        click.echo(f"plots:         {', '.join(shown(p) for p in plots)}")
    click.echo(f"lineage:       deepphoenix lineage show {shown(run_dir)}")
    click.echo(f"report:        deepphoenix report {shown(run_dir)} -o report.html")


_RUN_BEST = '''"""Run best.py on its own, outside deepphoenix: `python run_best.py`.

deepphoenix executes a program with `torch` and `transformers` already in its namespace
(the paper's snippet uses `transformers` without importing it), in a directory where
Salesforce/codet5-small/config.json is a local file (written next to this one, with the
run's vocabulary size), so nothing is downloaded. This does the same and prints what the
program defines.
"""

import os
import runpy

import torch
import transformers

here = os.path.dirname(os.path.abspath(__file__))
os.chdir(here)
names = runpy.run_path(os.path.join(here, "best.py"),
                       init_globals={"torch": torch, "transformers": transformers})
model = names.get("model")
if isinstance(model, torch.nn.Module):
    count = sum(p.numel() for p in model.parameters())
    print(f"best.py defines {type(model).__name__} with {count:,} parameters")
else:
    print("best.py defines: " + ", ".join(sorted(k for k in names if not k.startswith("_"))))
'''


def _write_standalone(run_dir: Path, best: Path, vocab_size: int) -> Path:
    """Write next to best.py what it needs to run outside deepphoenix: run_best.py and,
    when the program reads it, the local CodeT5-small config (the run's vocabulary)."""
    data = run_dir / "data" / "data.json"
    if data.exists():
        vocab_size = int(json.loads(data.read_text()).get("vocab_size", vocab_size))
    if CODET5_DIR in best.read_text(encoding="utf-8"):
        write_text_atomic(run_dir / CODET5_DIR / "config.json",
                          json.dumps(codet5_config(vocab_size), indent=1) + "\n")
    write_text_atomic(run_dir / "run_best.py", _RUN_BEST)
    return run_dir / "run_best.py"


@click.command(short_help="Score FILE as a run would score a candidate.")
@click.argument("file", type=click.Path(path_type=str))
@click.option("--preset", "preset_name", type=click.Choice(sorted(PRESETS)), default="cpu",
              show_default=True,
              help="Score FILE as a run of this preset scores its seed: the same data, "
                   "few-shot budget, evaluation seed and worker threads.")
@grammar_option(default=None)
@click.option("--objective", type=str, default=None, metavar="NAME|PATH.py:FN|module:FN",
              help=f"How to score FILE: {', '.join(objective_names())}, or your own function."
                   + _per_preset("objective"))
@click.option("--direction", type=str, default=None, metavar="minimize|maximize",
              help="Whether a lower or a higher score is better (reported, not used).")
@click.option("--task", type=click.Choice(TASK_NAMES), default=None,
              help="The data of the built-in objectives." + _per_preset("task"))
@click.option("--samples", type=click.IntRange(min=1), default=None,
              help="Few-shot rows (one epoch): refinement pairs or code-lm blocks."
                   + _per_preset("fewshot_samples"))
@click.option("--heldout-samples", type=click.IntRange(min=1), default=None,
              help="Held-out rows of the val-loss objective." + _per_preset("heldout_samples"))
@click.option("--vocab-size", type=click.IntRange(min=261), default=None,
              help="Size of the BPE trained on the refinement pairs."
                   + _per_preset("vocab_size"))
@click.option("--seed", "seed_", type=int, default=None,
              help="Run seed: the data and the evaluation seed derive from it, as in a run."
                   + _per_preset("seed"))
@click.option("--device", type=DEVICES, default=None,
              help="Where the model trains: auto uses CUDA when present." + _per_preset("device"))
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds (wall clock) before the evaluation is killed."
                   + _per_preset("timeout"))
@click.option("--disk-limit", "disk_limit_gb", type=click.FloatRange(min=0), default=None,
              metavar="GB", help="What the worker's workspace may hold, and the largest "
                                 "file it may write, in GB (0: none).  [default: 10]")
@json_option
def evaluate(file: str, preset_name: str, grammar: str | None, objective: str | None,
             direction: str | None, task: str | None, samples: int | None,
             heldout_samples: int | None, vocab_size: int | None, seed_: int | None,
             device: str | None, timeout: float | None, disk_limit_gb: float | None,
             as_json: bool) -> None:
    """Score FILE as a run would score a candidate: build its model in a sandboxed worker,
    train one epoch on the first SAMPLES rows (refinement pairs in FILE's style, or Python
    source blocks), and compute the objective. A grammar is read only where the data are
    made from FILE's sites (the built-in objectives on the refinement task); an objective
    that reads no task data (self-replication, your own) scores any file."""
    base = preset(preset_name)
    given = {"objective": objective, "direction": direction, "task": task,
             "fewshot_samples": samples, "heldout_samples": heldout_samples,
             "vocab_size": vocab_size, "seed": seed_, "device": device, "timeout": timeout,
             "grammar": grammar, "disk_limit_gb": disk_limit_gb}
    # The run's data, never fewer rows than the evaluation reads.
    rows = (samples or base.fewshot_samples) + (heldout_samples or base.heldout_samples)
    config = base.with_overrides(**given, dataset_size=max(base.dataset_size, rows))
    require_device(config.device)
    spec = resolve_objective(config.objective, config.direction)
    text = read_source(file)
    program = load_program(file, config.grammar) if needs_pairs(config) else None
    key = program.hash if program is not None else hashlib.sha256(text.encode()).hexdigest()
    with tempfile.TemporaryDirectory(prefix="deepphoenix-eval-") as folder:
        Path(folder).chmod(0o755)  # a worker that is not root reads its data
        data: RunData = prepare_run_data(Path(folder), config, program, refinement=False)
        with LocalExecutor(lone_evaluator(config, spec, text, readable=(folder,))) as executor:
            evaluator = Evaluator(executor, eval_settings(config, spec, data))
            (result,) = list(evaluator.evaluate([(key, text)]))
            isolation = dict(executor.pool.workers[0].isolation)
    if as_json:
        echo_json({**result.to_dict(), "objective": spec.name,
                   "direction": spec.direction.value, "isolation": isolation})
    else:  # stdout: a failure's stderr stays one line
        click.echo(isolation_summary(isolation))
    if not as_json and result.score is not None:
        m = result.metrics
        params = f"{m['params'] / 1e6:.2f} M parameters, " if m.get("params") else ""
        steps = f"{m['steps']} steps, " if "steps" in m else ""
        click.echo(f"{file}: {spec.name} {format_score(result.score)} "
                   f"({spec.direction.word} is better; {params}{steps}"
                   f"{m['wall_seconds']:.1f} s on {m['device']})")
    if result.score is None:
        fail(f"{file}: {result.status.value} at {result.stage}: {result.reason}")
