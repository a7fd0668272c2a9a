"""Compute to the same quality: greedy at full fidelity against `--strategy async
--fidelity asha`, counting the training every evaluation did.

Each row is a `deepphoenix run` (its own process, one after another) on a preset, over
the run seeds given:

    greedy-P  --strategy greedy --fidelity full, proposer P: the preset's E x B x C
              candidate slots, each candidate trained on the whole few-shot budget
    asha-P    --strategy async --fidelity asha (eta 3, three rungs), proposer P, with
              `--factor` times the preset's batches (default 3): each candidate costs
              about a third as much, so the two spend about the same compute

P is each of `--proposers` (default tpe and learned).

**Compute** of a run is the number of training samples (and optimizer steps) summed over
every evaluation it ran, the seed's, failed ones and those ASHA stopped at a lower rung
included: read from the run's database (the ``rungs`` table, which records every
evaluation job with its metrics, and for evaluations outside it, the variant's metrics;
a failure records what it trained before it failed). It leaves out the held-out forward
passes of ``val-loss`` and the proposer's own training stage (the same for both rows of
one proposer; `learned` trains once per episode).

Reported per preset, over the seeds:

- the median best score at equal compute: each run's best full evaluation once its
  cumulative compute reaches the reference (the median total compute of greedy-tpe's
  runs; a run that ended below it counts with its final best, marked);
- the median best at the end and the median total compute;
- the compute each row needs to reach greedy-tpe's median best (the median over the
  seeds that got there, and how many did).

    python benchmarks/bench_fidelity.py --presets cpu gpt-cpu --seeds 300 301 302 303 304 \\
        --out benchmarks/fidelity.jsonl [--proposers tpe learned] [--factor 3]
        [--run-args --timeout 900]

Finished runs are appended to `--out` as JSON lines and skipped when the command is run
again; `--report` prints the tables from the file alone. `--reuse RUNS` reads a greedy row
from a finished run that `bench_search.py --runs RUNS` left (`PRESET-PROPOSER-SEED`: the
same `deepphoenix run` with the same seed, greedy at full fidelity) instead of running it
again; its record says so (`reused`) and its wall time is the run's own clock.
"""

from __future__ import annotations

import argparse
import json
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

from deepphoenix.engine import preset as preset_config
from deepphoenix.store import RunStore

STRATEGIES = {"greedy": ["--strategy", "greedy", "--fidelity", "full"],
              "asha": ["--strategy", "async", "--fidelity", "asha"]}
REFERENCE = "greedy-tpe"


def _spent(metrics: dict[str, Any]) -> tuple[int, int]:
    """(samples, steps) an evaluation trained on, from its metrics (0 where it never
    trained)."""
    return int(metrics.get("samples") or 0), int(metrics.get("steps") or 0)


def compute_curve(run_dir: Path) -> dict[str, Any]:
    """A run's compute, evaluation by evaluation in the order results were recorded:
    totals and the best full score against cumulative samples."""
    with RunStore.open(run_dir) as store:
        sign = -1.0 if store.objective.get("direction") == "maximize" else 1.0
        variants = store.variants()
        rungs = [r for r in store.rungs() if r["finished_at"] is not None]
    in_rungs = {r["hash"] for r in rungs}
    events: list[tuple[float, int, int, float | None]] = []  # (time, samples, steps, full)
    for r in rungs:
        events.append((r["finished_at"], *_spent(r["metrics"]), None))
    for v in variants:
        if v.scored_at is None:
            continue
        # a variant's own row is its full evaluation (or its last one): counted here only
        # when the rungs table does not hold it
        samples, steps = (0, 0) if v.hash in in_rungs else _spent(v.metrics)
        full = v.score if v.status == "scored" else None
        events.append((v.scored_at, samples, steps, full))
    events.sort(key=lambda e: e[0])
    total_samples = total_steps = 0
    best: float | None = None
    curve: list[tuple[int, float]] = []
    for _at, samples, steps, full in events:
        total_samples += samples
        total_steps += steps
        if full is not None and (best is None or sign * full < sign * best):
            best = full
            curve.append((total_samples, best))
    return {"samples": total_samples, "steps": total_steps, "best": best,
            "curve": curve, "rung_evaluations": len(rungs),
            "full_evaluations": sum(1 for v in variants if v.status == "scored"),
            "pruned": sum(1 for v in variants if v.status == "pruned"),
            "direction": "maximize" if sign < 0 else "minimize"}


def _commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=False).stdout.strip()


def reused(preset: str, row: str, seed: int, runs: Path) -> dict[str, Any] | None:
    """A greedy row read from bench_search's finished run of the same preset, proposer
    and seed in `runs`; None when there is none (or the row is not greedy)."""
    strategy, _, proposer = row.partition("-")
    run_dir = runs / f"{preset}-{proposer}-{seed}"
    if strategy != "greedy" or not (run_dir / "summary.json").is_file():
        return None
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"preset": preset, "row": row, "seed": seed, "proposer": proposer,
            "strategy": strategy, "factor": 1, "commit": None,  # not known from the run
            "reused": str(run_dir), "wall": round(summary["seconds"], 2),
            "final_best": summary["best_score"], **compute_curve(run_dir)}


def run_once(preset: str, row: str, seed: int, folder: Path, factor: int,
             extra: list[str] | None = None) -> dict[str, Any]:
    strategy, _, proposer = row.partition("-")
    run_dir = folder / f"{preset}-{row}-{seed}"
    options = list(STRATEGIES[strategy])
    if strategy == "asha":
        options += ["--batches", str(preset_config(preset).batches * factor)]
    command = [sys.executable, "-m", "deepphoenix", "run", "--preset", preset,
               "--proposer", proposer, "--seed", str(seed), "--run-dir", str(run_dir),
               "--quiet", *options, *(extra or [])]
    summary, wall = run_deepphoenix(command, run_dir)
    return {"preset": preset, "row": row, "seed": seed, "proposer": proposer,
            "strategy": strategy, "factor": factor if strategy == "asha" else 1,
            "commit": _commit(), "wall": round(wall, 2), "final_best": summary["best_score"],
            **compute_curve(run_dir)}


def report(results: list[dict[str, Any]]) -> str:
    lines = []
    for preset, runs, seeds, sign in by_preset(results):
        ref = [r for r in runs if r["row"] == REFERENCE]
        ref_compute = statistics.median(r["samples"] for r in ref) if ref else None
        ref_best = statistics.median(r["best"] for r in ref) if ref else None
        lines += [f"### {preset}: {len(seeds)} seeds ({', '.join(map(str, seeds))}), "
                  f"{runs[0]['direction']} the score", "",
                  f"| search | median best at {REFERENCE}'s median compute "
                  f"({fmt(ref_compute, 0)} samples) | median best at the end | range "
                  f"| median compute (samples) | median optimizer steps "
                  f"| median evaluations (rung jobs) / full / pruned "
                  f"| compute to {REFERENCE}'s median best ({fmt(ref_best)}) "
                  f"| median wall (process) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for row in dict.fromkeys(r["row"] for r in runs):
            mine = sorted((r for r in runs if r["row"] == row), key=lambda r: r["seed"])
            bests = [r["best"] for r in mine]
            at_ref, short = [], 0
            if ref_compute is not None:
                for r in mine:
                    found = best_by(r["curve"], ref_compute)
                    if r["samples"] < ref_compute:
                        short += 1
                        found = r["best"]
                    if found is not None:
                        at_ref.append(found)
            reached = ([x for r in mine for x in [reach(r["curve"], ref_best, sign)]
                        if x is not None] if ref_best is not None else [])
            jobs = statistics.median(max(r["rung_evaluations"], r["full_evaluations"])
                                     for r in mine)
            lines.append(
                f"| {row} | {fmt(statistics.median(at_ref)) if at_ref else '-'}"
                f"{f' ({short} ended below it)' if short else ''} | "
                f"{fmt(statistics.median(bests))} | {fmt(min(bests))}–{fmt(max(bests))} | "
                f"{statistics.median(r['samples'] for r in mine):.0f} | "
                f"{statistics.median(r['steps'] for r in mine):.0f} | "
                f"{jobs:.0f} / {statistics.median(r['full_evaluations'] for r in mine):.0f} / "
                f"{statistics.median(r['pruned'] for r in mine):.0f} | "
                f"{(fmt(statistics.median(reached), 0) + ' samples') if reached else 'never'}"
                f" ({len(reached)}/{len(mine)} seeds) | "
                f"{statistics.median(r['wall'] for r in mine):.0f} s |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["cpu", "gpt-cpu"])
    parser.add_argument("--seeds", nargs="+", type=int, required=True,
                        help="run seeds (not ones anything was tuned on)")
    parser.add_argument("--proposers", nargs="+", default=["tpe", "learned"])
    parser.add_argument("--strategies", nargs="+", choices=list(STRATEGIES),
                        default=list(STRATEGIES))
    parser.add_argument("--factor", type=int, default=3,
                        help="asha rows get this many times the preset's batches")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/fidelity.jsonl"))
    parser.add_argument("--runs", type=Path, default=None,
                        help="where the run directories go [default: a temporary folder]")
    parser.add_argument("--reuse", type=Path, default=None,
                        help="read greedy rows from bench_search's finished runs here")
    parser.add_argument("--report", action="store_true", help="only print the tables")
    parser.add_argument("--run-args", nargs=argparse.REMAINDER, default=[],
                        help="passed on to every `deepphoenix run`, last on the line")
    args = parser.parse_args()
    results = read_results(args.out)
    rows = [f"{s}-{p}" for p in args.proposers for s in args.strategies]
    if not args.report:
        print(machine_header("runs one after another"), flush=True)
        done = {(r["preset"], r["row"], r["seed"]) for r in results}
        folder = args.runs or Path(tempfile.mkdtemp(prefix="bench-fidelity-"))
        for preset in args.presets:
            for seed in args.seeds:
                for row in rows:
                    if (preset, row, seed) in done:
                        continue
                    result = ((args.reuse and reused(preset, row, seed, args.reuse))
                              or run_once(preset, row, seed, folder, args.factor,
                                          args.run_args))
                    results.append(result)
                    append_result(args.out, result)
                    print(f"{preset} {row} seed {seed}: best {result['best']:.4f}, "
                          f"{result['samples']} samples trained, "
                          f"{result['full_evaluations']} full evaluations, "
                          f"{result['pruned']} pruned, {result['wall']:.0f} s", flush=True)
    wanted = [r for r in results if r["preset"] in args.presets and r["seed"] in args.seeds
              and r["row"] in rows]
    print(report(wanted))


if __name__ == "__main__":
    main()
