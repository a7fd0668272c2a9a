"""Every proposer on real model files, at a user's scale: nanoGPT's model.py and a CIFAR
ResNet from public repositories, each shrunk as a user would, each with its own objective.

Two tasks; a task is a real file, the user's shrink of it, a built-in grammar and an own
objective (a `score.py`, self-contained, run in the sandbox like any user's):

    nanogpt  karpathy/nanoGPT's model.py (MIT). GPTConfig's defaults set to 2 layers, 2
             heads, 64 wide, context 64, vocabulary 256, and `model = GPT(GPTConfig())`
             appended; `--grammar nanogpt`; real_gpt_objective.py: 60 AdamW steps on bytes
             of standard-library source, the validation loss.
    resnet   kuangliu/pytorch-cifar's models/resnet.py (MIT). Stage widths 64-512 cut to
             16-128 (the stem, its norm and the classifier's input with them) and `model =
             ResNet(block=BasicBlock, num_blocks=[1, 1, 1, 1])` appended; `--grammar
             resnet`; real_cnn_objective.py: 40 Adam steps on pictures of ten classes drawn
             here, the validation loss.

The shrink is deepphoenix's own edit machinery, not text substitution: a small grammar
that selects the literals to change (`GPTConfig`'s fields; the ResNet's widths, and a
structural site for the classifier line) and `Program.apply` writes the new values,
checked; then the `model = ...` line is appended. `--prepare DIR` writes the shrunk files
and stops.

Each row is a `deepphoenix run --source FILE --grammar G --objective OBJ:evaluate
--proposer P --seed S` (its own process, one after another) with `--episodes 2 --batches
3 --candidates 4`: 25 evaluations with the seed's, equal for every row; without and with
`--max-params` at the seed's own parameter count (as bench_structure.py does). Reported
per task and arm: the median best and its range over the seeds, on how many seeds each
row beat tpe and gp, the median parameters of the best, evaluations (scored / failed),
what the cap cost (candidates evaluated over it, candidates checked out before
evaluation, redraws, slots lost), the seconds to the first proposal and the median wall.

    python benchmarks/bench_real.py --nanogpt PATH --resnet PATH \\
        --seeds 731 732 733 734 735 --out benchmarks/real.jsonl

PATH is the fetched file, a checkout of its repository, or the repository's git
directory (read at HEAD). The fetched files are never committed; each result records the
repository's commit (when known), the file's and the shrunk file's sha256 and the
licence's first line. Finished runs are appended to `--out` as JSON lines and skipped
when the command is run again, so an interrupted benchmark continues (a run that failed
is recorded with its error; `--redo-failed` runs it again); `--report` prints the tables
from the file alone. `--final FILE ...` adds records measured later (a proposer again, at
a later commit) that replace `--out`'s for the same task, proposer, arm and seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import append_result, fmt, machine_header, read_results, run_deepphoenix

from deepphoenix import parse_grammar, parse_program

HERE = Path(__file__).resolve().parent

PROPOSERS = ("random", "tpe", "gp", "learned")
ARMS = ("free", "capped")  # without and with --max-params at the seed's own count
VERSUS = ("tpe", "gp")  # each row's seeds compared with these, seed by seed
BUDGET = {"episodes": 2, "batches": 3, "candidates": 4}  # 2 x 3 x 4 + the seed = 25


# -- the user's shrink, with deepphoenix's own edits ----------------------------------------

def _int_sites(names: dict[str, str]) -> str:
    return "".join(f'\n[sites.{name}]\nselect = "{select}"\nkind = "int"\nmin = 1\n'
                   f"max = 1000000\n" for name, select in names.items())


NANOGPT_SHRINK_GRAMMAR = 'name = "shrink-gptconfig"\n' + _int_sites(
    {name: f"field:GPTConfig.{name}"
     for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd")})
NANOGPT_SHRINK = {"n_layer": 2, "n_head": 2, "n_embd": 64, "block_size": 64,
                  "vocab_size": 256}
NANOGPT_MODEL_LINE = "model = GPT(GPTConfig())"

RESNET_SHRINK_GRAMMAR = 'name = "shrink-resnet"\n' + _int_sites({
    "in_planes": "attribute:self.in_planes in ResNet.__init__",
    "stem": "arg:nn.Conv2d[1] in ResNet.__init__",
    "stem_norm": "arg:nn.BatchNorm2d[0] in ResNet.__init__",
    **{f"width{k}": f"arg:_make_layer[1]#{k} in ResNet.__init__" for k in range(1, 5)},
}) + '''
[sites.classifier]
kind = "expression"
select = "attribute:self.linear in ResNet.__init__"

[sites.classifier.alternatives]
original = "nn.Linear(512*block.expansion, num_classes)"
shrunk = "nn.Linear(128*block.expansion, num_classes)"
'''
RESNET_SHRINK = {"in_planes": 16, "stem": 16, "stem_norm": 16, "width1": 16, "width2": 32,
                 "width3": 64, "width4": 128, "classifier": "shrunk"}
RESNET_MODEL_LINE = "model = ResNet(block=BasicBlock, num_blocks=[1, 1, 1, 1])"


def shrink(text: str, path: str, grammar_toml: str, values: dict[str, Any],
           model_line: str) -> str:
    """`text` with `values` written at the shrink grammar's sites (checked by the mutator)
    and `model_line` appended: what a user does before the first `deepphoenix run`."""
    grammar = parse_grammar(grammar_toml, origin=f"bench_real shrink of {path}")
    mutation = parse_program(text, grammar, path).apply(values)
    if not mutation.ok or mutation.variant is None:
        raise SystemExit(f"cannot shrink {path}: {mutation.outcome.value}: {mutation.reason}")
    return (mutation.variant.source.rstrip("\n") + "\n\n\n# Added for deepphoenix: the model "
            "a run builds, counts and hands to the objective.\n" + model_line + "\n")


@dataclass(frozen=True)
class Task:
    name: str
    repository: str  # where the file comes from (for the record)
    inner: str  # the file's path in its repository
    grammar: str
    objective: Path
    shrink: Callable[[str, str], str]


TASKS = {
    "nanogpt": Task("nanogpt", "karpathy/nanoGPT", "model.py", "nanogpt",
                    HERE / "real_gpt_objective.py",
                    lambda text, path: shrink(text, path, NANOGPT_SHRINK_GRAMMAR,
                                              NANOGPT_SHRINK, NANOGPT_MODEL_LINE)),
    "resnet": Task("resnet", "kuangliu/pytorch-cifar", "models/resnet.py", "resnet",
                   HERE / "real_cnn_objective.py",
                   lambda text, path: shrink(text, path, RESNET_SHRINK_GRAMMAR,
                                             RESNET_SHRINK, RESNET_MODEL_LINE)),
}


# -- the fetched file -------------------------------------------------------------------------

def _git(git_dir: Path, *args: str) -> str | None:
    done = subprocess.run(["git", f"--git-dir={git_dir}", *args], capture_output=True,
                          text=True, check=False)
    return done.stdout if done.returncode == 0 else None


def read_fetched(path: Path, inner: str) -> tuple[str, dict[str, Any]]:
    """The file's text and where it came from: `path` is the file, a checkout holding
    `inner`, or a git directory (read at HEAD)."""
    origin: dict[str, Any] = {"path": str(path)}
    if (path / "HEAD").is_file() and (path / "objects").is_dir():
        text = _git(path, "show", f"HEAD:{inner}")
        if text is None:
            raise SystemExit(f"{path} is a git directory without {inner} at HEAD")
        origin["commit"] = (_git(path, "rev-parse", "HEAD") or "").strip()
        licence = _git(path, "show", "HEAD:LICENSE")
    else:
        file = path / inner if path.is_dir() else path
        if not file.is_file():
            raise SystemExit(f"no such file: {file}")
        text = file.read_text(encoding="utf-8")
        root = path if path.is_dir() else None
        if root is None:  # a lone file: look for its repository's licence above it
            for folder in path.resolve().parents:
                if (folder / "LICENSE").is_file():
                    root = folder
                    break
        licence = (root / "LICENSE").read_text(encoding="utf-8") if root and (
            root / "LICENSE").is_file() else None
        if root is not None:
            commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                                    capture_output=True, text=True, check=False)
            if commit.returncode == 0:
                origin["commit"] = commit.stdout.strip()
    origin["licence"] = licence.strip().splitlines()[0] if licence else "not found"
    origin["sha256"] = hashlib.sha256(text.encode()).hexdigest()
    return text, origin


def seed_parameters(source: Path) -> int:
    """The shrunk file's `model` parameters as a run counts them (its own process: the
    file is the user's code)."""
    code = ("import contextlib, io, sys\n"
            "from deepphoenix.training import count_parameters\n"
            "namespace = {'__name__': 'bench_real_seed'}\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    exec(compile(open(sys.argv[1]).read(), sys.argv[1], 'exec'), namespace)\n"
            "print(count_parameters(namespace['model']))\n")
    done = subprocess.run([sys.executable, "-c", code, str(source)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{source} does not build: {done.stderr.strip()[-400:]}")
    return int(done.stdout.split()[-1])


def prepare(task: Task, path: Path, folder: Path) -> tuple[Path, dict[str, Any]]:
    """Write the shrunk file into `folder`; its path and its record (origin, parameters)."""
    text, origin = read_fetched(path, task.inner)
    small = task.shrink(text, task.inner)
    target = folder / f"{task.name}-{Path(task.inner).name}"
    target.write_text(small, encoding="utf-8")
    origin.update(repository=task.repository, file=task.inner,
                  shrunk_sha256=hashlib.sha256(small.encode()).hexdigest(),
                  params=seed_parameters(target))
    return target, origin


# -- one run ------------------------------------------------------------------------------------

def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def cap_counts(db: sqlite3.Connection) -> dict[str, int]:
    """What `--max-params` cost a run, from its database: candidates evaluated and then
    rejected over the cap (each took an evaluation slot), candidates a check kept from
    evaluation (stage ``constraint``, once the static check exists), redraws for them,
    and the slots lost (evaluated over the cap, or checked out and not drawn again)."""
    over = db.execute("select count(*) from variants where status = 'rejected' and stage != "
                      "'constraint' and reason like '%over the limit%'").fetchone()[0]
    checked_out = db.execute("select count(*) from variants where status = 'rejected' and "
                             "stage = 'constraint'").fetchone()[0]
    redraws = (db.execute("select count(*) from attempts where redraw_of is not null")
               .fetchone()[0] if "redraw_of" in _columns(db, "attempts") else 0)
    return {"over_cap_evaluated": over, "checked_out": checked_out, "redraws": redraws,
            "slots_lost": over + max(0, checked_out - redraws)}


def run_once(task: Task, source: Path, proposer: str, arm: str, seed: int, cap: int,
             folder: Path, extra: list[str]) -> dict[str, Any]:
    run_dir = folder / f"{task.name}-{proposer}-{arm}-{seed}"
    command = [sys.executable, "-m", "deepphoenix", "run", "--source", str(source),
               "--grammar", task.grammar, "--objective", f"{task.objective}:evaluate",
               "--proposer", proposer, "--seed", str(seed),
               *(f"--{k}={v}" for k, v in BUDGET.items()),
               "--run-dir", str(run_dir), "--quiet", "--no-plots",
               *(["--max-params", str(cap)] if arm == "capped" else []), *extra]
    record: dict[str, Any] = {
        "task": task.name, "proposer": proposer, "arm": arm, "seed": seed,
        "cap": cap if arm == "capped" else None,
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE,
                                 capture_output=True, text=True, check=False).stdout.strip(),
        "command": " ".join(command[1:]), "load": round(os.getloadavg()[0], 2)}
    began = time.monotonic()
    try:
        summary, wall = run_deepphoenix(command, run_dir)
    except SystemExit as failed:  # recorded, so the report shows it and the rest goes on
        # "COMMAND failed (RC): STDERR": the command is in the record already
        code, _, stderr = str(failed).split(" failed (", 1)[-1].partition("): ")
        return {**record, "error": f"exit {code}: {stderr[-600:]}",
                "wall": round(time.monotonic() - began, 2)}
    with sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True) as db:
        statuses = dict(db.execute("select status, count(*) from variants where scored_at "
                                   "is not null group by status").fetchall())
        seconds = [json.loads(m).get("wall_seconds") for (m,) in db.execute(
            "select metrics from variants where status = 'scored'")]
        created = json.loads(db.execute("select value from meta where key = 'created_at'")
                             .fetchone()[0])
        first = db.execute("select min(created_at) from attempts").fetchone()[0]
        counts = cap_counts(db)
        outcomes = dict(db.execute("select outcome, count(*) from attempts group by outcome")
                        .fetchall())
    seconds = [s for s in seconds if s is not None]
    return {**record, "wall": round(wall, 2), "best": summary["best_score"],
            "seed_score": summary["seed_score"], "best_params": summary["best_params"],
            "seed_params": summary["seed_params"], "evaluations": sum(statuses.values()),
            "scored": statuses.get("scored", 0), "failed": statuses.get("failed", 0),
            "rejected": statuses.get("rejected", 0), **counts, "outcomes": outcomes,
            "eval_seconds": round(statistics.median(seconds), 2) if seconds else None,
            "first_proposal": round(float(first) - float(created), 1) if first else None,
            "load_end": round(os.getloadavg()[0], 2)}


# -- the report ---------------------------------------------------------------------------------

def _range(values: list[float]) -> str:
    return f"{fmt(min(values))}–{fmt(max(values))}" if values else "-"


def _median(values: list[Any], digits: int = 0, unit: str = "") -> str:
    known = [v for v in values if v is not None]
    return f"{statistics.median(known):.{digits}f}{unit}" if known else "-"


def _params(values: list[int | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{statistics.median(known):,.0f}" if known else "-"


def combine(*files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of several files as one table's: a record replaces an earlier file's
    for the same task, proposer, arm and seed (a proposer measured again, at a later
    commit, stands in for its first rows on the seeds it has)."""
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for records in files:
        for r in records:
            latest[(r["task"], r["proposer"], r["arm"], r["seed"])] = r
    return list(latest.values())


def report(results: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    for task in dict.fromkeys(r["task"] for r in results):
        runs = [r for r in results if r["task"] == task]
        done = [r for r in runs if "error" not in r]
        seeds = sorted({r["seed"] for r in runs})
        caps = {r["cap"] for r in runs if r["cap"] is not None}
        budgets = {" x ".join(str(v) for v in r.get("budget", BUDGET).values())
                   + f" + the seed = {math.prod(r.get('budget', BUDGET).values()) + 1}"
                   for r in runs}
        lines += [f"### {task}: run seeds {', '.join(map(str, seeds))}, "
                  f"{' and '.join(sorted(budgets))} evaluations, "
                  + (f"cap {', '.join(f'{c:,}' for c in sorted(caps))} parameters" if caps
                     else "no cap"), "",
                  "| proposer | `--max-params` | runs | median best | range | seeds better "
                  f"than {' / '.join(VERSUS)} / both | median params of best | evaluations scored "
                  "/ failed (median) | proposals out of domain / otherwise refused (sum) "
                  "| over the cap: evaluated / checked out / redraws / slots lost (sum) "
                  "| first proposal after (median) | median wall (process) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for arm in ARMS:
            for proposer in PROPOSERS:
                mine = sorted((r for r in done if r["proposer"] == proposer
                               and r["arm"] == arm), key=lambda r: r["seed"])
                failed = [r for r in runs if r["proposer"] == proposer and r["arm"] == arm
                          and "error" in r]
                if not mine and not failed:
                    continue
                bests = [r["best"] for r in mine if r["best"] is not None]
                wins = []
                theirs = {other: {r["seed"]: r["best"] for r in done if r["proposer"] == other
                                  and r["arm"] == arm and r["best"] is not None}
                          for other in VERSUS}
                for other in (*VERSUS, None):  # None: better than every one of VERSUS
                    against = [theirs[other]] if other else list(theirs.values())
                    paired = [r for r in mine if r["best"] is not None
                              and all(r["seed"] in t for t in against)]
                    better = sum(all(r["best"] < t[r["seed"]] for t in against)
                                 for r in paired)
                    wins.append(f"{better}/{len(paired)}")
                outcomes = [r.get("outcomes", {}) for r in mine]
                domain = sum(o.get("out-of-domain", 0) for o in outcomes)
                invalid = sum(n for o in outcomes for k, n in o.items()
                              if k not in ("ok", "out-of-domain"))
                cost = " / ".join(str(sum(r[k] for r in mine)) for k in (
                    "over_cap_evaluated", "checked_out", "redraws", "slots_lost"))
                lines.append(
                    f"| {proposer} | {'seed count' if arm == 'capped' else 'off'} | "
                    f"{len(mine)}{f' (+{len(failed)} failed)' if failed else ''} | "
                    f"{fmt(statistics.median(bests)) if bests else '-'} | {_range(bests)} | "
                    f"{' · '.join(wins) if proposer not in VERSUS else '-'} | "
                    f"{_params([r['best_params'] for r in mine])} | "
                    f"{_median([r['scored'] for r in mine])} / "
                    f"{_median([r['failed'] for r in mine])} | {domain} / {invalid} | "
                    f"{cost if arm == 'capped' else '-'} | "
                    f"{_median([r['first_proposal'] for r in mine], 0, ' s')} | "
                    f"{_median([r['wall'] for r in mine], 0, ' s')} |")
        seed_scores = {r["seed"]: r["seed_score"] for r in done}
        lines += ["", f"Best score per seed ({task}; the seed's own first):", "",
                  "| proposer | `--max-params` | " + " | ".join(map(str, seeds)) + " |",
                  "|---|---|" + "---|" * len(seeds),
                  "| (the seed) | | " + " | ".join(fmt(seed_scores.get(s), 4)
                                                   for s in seeds) + " |"]
        for arm in ARMS:
            for proposer in PROPOSERS:
                by_seed = {r["seed"]: r for r in runs if r["proposer"] == proposer
                           and r["arm"] == arm}
                if by_seed:
                    cells = ["failed" if "error" in by_seed.get(s, {}) else
                             fmt(by_seed[s]["best"], 4) if s in by_seed else "-" for s in seeds]
                    lines.append(f"| {proposer} | {'on' if arm == 'capped' else 'off'} | "
                                 + " | ".join(cells) + " |")
        errors = [r for r in runs if "error" in r]
        if errors:
            lines += ["", "Runs that did not finish:", ""]
            lines += [f"- {r['proposer']} {r['arm']} seed {r['seed']}"
                      + (f", after {r['wall']:.0f} s" if r.get("wall") else "")
                      + f": {r['error'].splitlines()[-1][-300:]}" for r in errors]
        timed = [r["eval_seconds"] for r in done if r.get("eval_seconds") is not None]
        if timed:
            lines += ["", f"One evaluation inside a worker: median {_median(timed, 1, ' s')} "
                      f"over the runs' medians (range {min(timed):.1f}–{max(timed):.1f} s)."]
        lines.append("")
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nanogpt", type=Path, default=None,
                        help="nanoGPT's model.py, a checkout, or its git directory")
    parser.add_argument("--resnet", type=Path, default=None,
                        help="pytorch-cifar's models/resnet.py, a checkout, or its git "
                             "directory")
    parser.add_argument("--seeds", nargs="+", type=int, default=[731, 732, 733, 734, 735])
    parser.add_argument("--proposers", nargs="+", choices=PROPOSERS, default=list(PROPOSERS))
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS),
                        help="free: no cap; capped: --max-params at the seed's own count")
    parser.add_argument("--budget", nargs=3, type=int, metavar=("E", "B", "C"), default=None,
                        help="episodes, batches, candidates [default: 2 3 4, 25 evaluations]"
                             " (a smoke test only: the table's rows need equal budgets)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/real.jsonl"))
    parser.add_argument("--final", type=Path, nargs="+", default=[], metavar="FILE",
                        help="for the tables: records that replace --out's for the same "
                             "task, proposer, arm and seed (a later file's win), e.g. a "
                             "proposer measured again at a later commit")
    parser.add_argument("--runs", type=Path, default=None,
                        help="where the run directories go [default: a temporary folder]")
    parser.add_argument("--prepare", type=Path, default=None, metavar="DIR",
                        help="only write the shrunk files into DIR and print their records")
    parser.add_argument("--redo-failed", action="store_true",
                        help="run again the runs recorded as failed")
    parser.add_argument("--report", action="store_true", help="only print the tables")
    parser.add_argument("--run-args", nargs=argparse.REMAINDER, default=[],
                        help="passed on to every `deepphoenix run`, last on the line "
                             "(e.g. --timeout 300)")
    args = parser.parse_args()
    if args.budget is not None:
        BUDGET.update(zip(("episodes", "batches", "candidates"), args.budget, strict=True))
    paths = {name: getattr(args, name) for name in TASKS if getattr(args, name) is not None}
    results = read_results(args.out)
    if not args.report:
        if not paths:
            parser.error("name at least one file: --nanogpt PATH and/or --resnet PATH")
        folder = args.prepare or args.runs or Path(tempfile.mkdtemp(prefix="bench-real-"))
        folder.mkdir(parents=True, exist_ok=True)
        prepared = {name: prepare(TASKS[name], path, folder) for name, path in paths.items()}
        if args.prepare is not None:
            for name, (source, origin) in prepared.items():
                print(f"{name}: {source} {json.dumps(origin)}")
            return
        print(machine_header("runs one after another"), flush=True)
        for name, (_, origin) in prepared.items():
            print(f"# {name}: {json.dumps(origin)}", flush=True)
        if args.redo_failed and any("error" in r for r in results):
            results = [r for r in results if "error" not in r]
            args.out.write_text("".join(json.dumps(r) + "\n" for r in results))
        done = {(r["task"], r["proposer"], r["arm"], r["seed"]) for r in results}
        for name, (source, origin) in prepared.items():
            for seed in args.seeds:
                for arm in args.arms:
                    for proposer in args.proposers:
                        if (name, proposer, arm, seed) in done:
                            continue
                        result = run_once(TASKS[name], source, proposer, arm, seed,
                                          origin["params"], folder, args.run_args)
                        result.update(origin=origin, budget=dict(BUDGET))
                        results.append(result)
                        append_result(args.out, result)
                        print(f"{name} {proposer} {arm} seed {seed}: " + (
                            f"failed: {result['error'].splitlines()[-1][-200:]}"
                            if "error" in result else
                            f"best {fmt(result['best'], 4)} (seed {fmt(result['seed_score'], 4)}"
                            f"), {result['scored']} scored, {result['failed']} failed, "
                            f"{result['slots_lost']} slots lost to the cap, "
                            f"{result['wall']:.0f} s"), flush=True)
    results = combine(results, *(read_results(path) for path in args.final))
    wanted = [r for r in results if r["seed"] in args.seeds and r["proposer"] in args.proposers
              and r["arm"] in args.arms and (not paths or r["task"] in paths)]
    if wanted:
        print(report(wanted))


if __name__ == "__main__":
    main()
