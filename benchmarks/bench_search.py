"""Searches compared at an equal evaluation budget and at equal wall clock.

Each row is a `deepphoenix run` (its own process, one after another on an otherwise idle
machine) on a preset, over several run seeds:

    t5        the paper's proposer: a T5 trained each episode on random refinements
    learned   the T5 that learns from its run (hindsight pairs, warm start, wide sample
              ranked by a surrogate)
    random    the grammar's random refinements, greedy
    best-of-n random refinements of the seed, the best kept
    tpe       Optuna's TPE over the grammar's sites
    gp        Optuna's GP-BO (GPSampler) over the grammar's sites, mended as tpe
    random-gp the learned proposer's wide sample and surrogate ranking over the
              grammar's single-site random draws (no T5)
    random-gp-multi  as random-gp, each draw changing as many sites as the T5's samples
    t5-only   the learned proposer's T5 (warm start, hindsight) without the ranking
    learned-pretrained  learned, its first stage started from `--proposer-init MODEL`
              (a proposer `deepphoenix proposer pretrain` trained on other runs)
    tpe-async-asha  tpe with `--strategy async --fidelity asha`

Every row has the same E x B x C candidate slots, objective and data, so the number of
evaluations is equal up to candidates a proposer could not make distinct. Reported per
preset: the median and range of the best score over the seeds, the best after the first
8 evaluations, the median parameter count
of the best, the share of evaluated candidates that change 1 / 2 / 3+ sites, the median
wall time, the median best reached by TPE's median wall time
(equal wall clock), and the median time to reach TPE's median best (with how many seeds
got there at all).

    python benchmarks/bench_search.py --presets cpu gpt-cpu --seeds 100 101 102 103 104 \\
        --out benchmarks/search.jsonl [--rows t5 learned random best-of-n tpe gp ...]
        [--run-args --timeout 900]

Finished runs are appended to `--out` as JSON lines and skipped when the command is run
again, so an interrupted benchmark continues; `--report` prints the tables from the file
alone.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    append_result,
    best_by,
    by_preset,
    fmt,
    machine_header,
    reach,
    read_results,
    run_deepphoenix,
)

INIT = "{proposer-init}"  # replaced by the benchmark's --proposer-init
ROWS: dict[str, tuple[str, str, tuple[str, ...]]] = {  # row -> (proposer, strategy, args)
    "t5": ("t5", "greedy", ()),
    "learned": ("learned", "greedy", ()),
    "random": ("random", "greedy", ()),
    "best-of-n": ("random", "best-of-n", ()),
    "tpe": ("tpe", "greedy", ()),
    "gp": ("gp", "greedy", ()),
    "random-gp": ("random-gp", "greedy", ()),
    "random-gp-multi": ("random-gp-multi", "greedy", ()),
    "t5-only": ("t5-only", "greedy", ()),
    "learned-pretrained": ("learned", "greedy", ("--proposer-init", INIT)),
    "tpe-async-asha": ("tpe", "async", ("--fidelity", "asha")),
}
# The rows every row's seeds are compared with, seed by seed.
VERSUS = ("tpe", "gp", "random-gp", "learned")


def run_once(preset: str, row: str, seed: int, folder: Path,
             extra: list[str] | None = None, init: Path | None = None) -> dict[str, Any]:
    proposer, strategy, own = ROWS[row]
    if INIT in own and init is None:
        raise SystemExit(f"row {row} needs --proposer-init MODEL")
    run_dir = folder / f"{preset}-{row}-{seed}"
    command = [sys.executable, "-m", "deepphoenix", "run", "--preset", preset,
               "--proposer", proposer, "--strategy", strategy, "--seed", str(seed),
               "--run-dir", str(run_dir), "--quiet",
               *(str(init) if arg == INIT else arg for arg in own), *(extra or [])]
    summary, wall = run_deepphoenix(command, run_dir)
    sign = -1.0 if summary["direction"] == "maximize" else 1.0
    with sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True) as db:
        meta = dict(db.execute("select key, value from meta where key in "
                               "('created_at', 'finished_at')").fetchall())
        created = float(json.loads(meta["created_at"]))
        finished = float(json.loads(meta["finished_at"]))
        scored = db.execute("select score, scored_at, metrics from variants where "
                            "status = 'scored' order by scored_at").fetchall()
        evaluated = db.execute("select count(*) from variants where scored_at is not "
                               "null").fetchone()[0]
        # the first EARLY evaluations (the seed's first; failures count as evaluations)
        first = [score for (score,) in db.execute(
            "select score from variants where scored_at is not null order by scored_at "
            "limit ?", (EARLY,)) if score is not None]
    curve, best = [], None
    for score, at, _metrics in scored:  # best so far, by the time each score arrived
        if best is None or sign * score < sign * best:
            best = score
        curve.append((round(at - created, 3), best))
    changed = _sites_changed(run_dir)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    return {"preset": preset, "row": row, "seed": seed, "proposer": proposer,
            "strategy": strategy, "commit": commit, "wall": round(wall, 2),
            "run_seconds": round(finished - created, 2), "best": summary["best_score"],
            "seed_score": summary["seed_score"], "best_params": summary["best_params"],
            "evaluations": evaluated, "direction": summary["direction"], "curve": curve,
            "early": min(first, key=lambda x: sign * x) if first else None,
            "sites_changed": changed}


EARLY = 8  # evaluations: "the best after 8" (the seed's is the first)


def _sites_changed(run_dir: Path) -> dict[str, int]:
    """How many evaluated candidates changed 1, 2, 3+ proposable sites of their parent."""
    from deepphoenix.lineage import run_grammar
    from deepphoenix.store import RunStore

    counts = {"1": 0, "2": 0, "3+": 0}
    with RunStore.open(run_dir) as store:
        grammar = run_grammar(store)
        names = ({spec.name for spec in grammar.sites if spec.proposable}
                 if grammar is not None else None)
        for attempt in store.attempts():
            if attempt.child is None or attempt.outcome != "ok":
                continue
            parent, child = store.variant(attempt.parent), store.variant(attempt.child)
            if parent is None or child is None:
                continue
            keys = names if names is not None else set(child.values)
            moved = sum(1 for k in keys if parent.values.get(k) != child.values.get(k))
            if moved:
                counts[str(moved) if moved < 3 else "3+"] += 1
    return counts


def _params(count: float) -> str:
    return f"{count / 1e6:.2f} M" if count >= 10_000 else f"{count:,.0f}"


def _shares(counts: list[int]) -> str:
    total = sum(counts)
    return " / ".join(f"{100 * c / total:.0f}%" for c in counts) if total else "-"


def report(results: list[dict[str, Any]], reference: str = "tpe",
           versus: tuple[str, ...] = VERSUS) -> str:
    """The tables; `reference` is the row whose median run time and median best the
    equal-wall and time-to columns use, `versus` the rows each row is counted against."""
    lines = []
    for preset, runs, seeds, sign in by_preset(results):
        ref = [r for r in runs if r["row"] == reference]
        ref_best = statistics.median(r["best"] for r in ref) if ref else None
        # Equal wall clock on the runs' own clock (from the run's creation, as the curves
        # are; the process wall adds ~3 s of start-up).
        ref_wall = statistics.median(r["run_seconds"] for r in ref) if ref else None
        lines += [f"### {preset}: {len(seeds)} seeds ({', '.join(map(str, seeds))}), "
                  f"{runs[0]['direction']} the score", "",
                  "| search | median best | range | seeds better than "
                  f"{' / '.join(versus)} "
                  f"| median best of the first {EARLY} evaluations "
                  "| median params of best | sites changed 1 / 2 / 3+ "
                  "| median variants evaluated | median wall (process) "
                  f"| best by {reference}'s median run time ({fmt(ref_wall, 0)} s) "
                  f"| time to {reference}'s median best ({fmt(ref_best)}) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in ROWS:
            mine = sorted((r for r in runs if r["row"] == row), key=lambda r: r["seed"])
            if not mine:
                continue
            bests = [r["best"] for r in mine]
            wins = [sum(1 for r in mine for t in runs if t["row"] == other
                        and t["seed"] == r["seed"] and sign * r["best"] < sign * t["best"])
                    for other in versus]
            early = [r["early"] for r in mine if r.get("early") is not None]
            changed = [sum(r.get("sites_changed", {}).get(k, 0) for r in mine)
                       for k in ("1", "2", "3+")]
            by_wall = [best_by(r["curve"], ref_wall) for r in mine] if ref_wall else []
            by_wall_known = [b for b in by_wall if b is not None]
            reached = [reach(r["curve"], ref_best, sign) for r in mine] if ref_best else []
            times = [t for t in reached if t is not None]
            lines.append(
                f"| {row} | {fmt(statistics.median(bests))} | {fmt(min(bests))}–"
                f"{fmt(max(bests))} | {' / '.join(map(str, wins))} of {len(mine)} | "
                f"{fmt(statistics.median(early)) if early else '-'} | "
                f"{_params(statistics.median(r['best_params'] or 0 for r in mine))} | "
                f"{_shares(changed)} | "
                f"{statistics.median(r['evaluations'] for r in mine):.0f} | "
                f"{statistics.median(r['wall'] for r in mine):.0f} s | "
                f"{fmt(statistics.median(by_wall_known)) if by_wall_known else '-'} | "
                f"{(fmt(statistics.median(times), 0) + ' s') if times else 'never'} "
                f"({len(times)}/{len(mine)} seeds) |")
        lines += ["", f"Best score per seed ({', '.join(map(str, seeds))}):", "",
                  "| search | " + " | ".join(map(str, seeds)) + " |",
                  "|---|" + "---|" * len(seeds)]
        for row in ROWS:
            by_seed = {r["seed"]: r["best"] for r in runs if r["row"] == row}
            if by_seed:
                lines.append(f"| {row} | " + " | ".join(
                    fmt(by_seed.get(seed), 4) for seed in seeds) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["cpu", "gpt-cpu"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[100, 101, 102, 103, 104])
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/search.jsonl"))
    parser.add_argument("--runs", type=Path, default=None,
                        help="where the run directories go [default: a temporary folder]")
    parser.add_argument("--report", action="store_true", help="only print the tables")
    parser.add_argument("--proposer-init", type=Path, default=None,
                        help="the pretrained proposer the learned-pretrained row starts from")
    parser.add_argument("--reference", choices=list(ROWS), default="tpe",
                        help="the row whose median run time and median best the "
                             "equal-wall columns use [default: tpe]")
    parser.add_argument("--versus", nargs="+", choices=list(ROWS), default=list(VERSUS),
                        help="the rows each row's seed-by-seed wins are counted against")
    parser.add_argument("--run-args", nargs=argparse.REMAINDER, default=[],
                        help="passed on to every `deepphoenix run`, last on the line "
                             "(e.g. --timeout 900 on a loaded machine)")
    args = parser.parse_args()
    results = read_results(args.out)
    if not args.report:
        print(machine_header("runs one after another"), flush=True)
        done = {(r["preset"], r["row"], r["seed"]) for r in results}
        folder = args.runs or Path(tempfile.mkdtemp(prefix="bench-search-"))
        for preset in args.presets:
            for seed in args.seeds:
                for row in args.rows:
                    if (preset, row, seed) in done:
                        continue
                    result = run_once(preset, row, seed, folder, args.run_args,
                                      args.proposer_init)
                    results.append(result)
                    append_result(args.out, result)
                    print(f"{preset} {row} seed {seed}: best {result['best']:.4f} "
                          f"({result['best_params'] / 1e6:.2f} M params), "
                          f"{result['evaluations']} evaluations, {result['wall']:.0f} s",
                          flush=True)
    wanted = [r for r in results if r["preset"] in args.presets and r["seed"] in args.seeds]
    print(report(wanted, args.reference, tuple(args.versus)))


if __name__ == "__main__":
    main()
