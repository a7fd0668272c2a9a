"""The evaluator and the run: seconds per few-shot evaluation and what persistent workers
save (worker start-up as a share of a per-candidate process), then the `cpu` preset's best
loss against its seed for the t5 proposer and the random baselines at equal budget.

Usage::

    python benchmarks/bench_evaluator.py [--repeats 3] [--runs t5,random,best-of-n]
        [--skip-runs] [--skip-evals] [--draw-rounds N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine_header

from deepphoenix.engine import Run, preset
from deepphoenix.evaluator import EvalSettings, Evaluator
from deepphoenix.executor import ExecutorSettings, LocalExecutor
from deepphoenix.grammar import load_grammar
from deepphoenix.mutator import parse_program
from deepphoenix.proposers import make_dataset
from deepphoenix.proposers._t5 import prepare_data
from deepphoenix.sandbox import Worker, WorkerSettings
from deepphoenix.seeds import seed_source


def worker_startup(repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        with Worker(WorkerSettings(threads=os.cpu_count() or 1), name="startup") as worker:
            worker.start()
            times.append(worker.startup_seconds[-1])
    return times


def evaluation_seconds(seed_name: str, samples: int, repeats: int,
                       folder: Path) -> dict[str, Any]:
    grammar = load_grammar("t5")
    program = parse_program(seed_source(seed_name), grammar)
    data = prepare_data(make_dataset(program, samples, seed=0), "source",
                        folder / f"{seed_name}-{samples}", 1024)
    settings = ExecutorSettings(worker=WorkerSettings(threads=os.cpu_count() or 1,
                                                      device="cpu"))
    with LocalExecutor(settings) as pool:
        evaluator = Evaluator(pool, EvalSettings(rows=data.tokens_path,
                                                 vocab_size=data.vocab_size, samples=samples,
                                                 batch_size=16))
        list(evaluator.evaluate([("warm", program.text)]))  # first job imports model code
        walls, fits, builds = [], [], []
        for i in range(repeats):
            began = time.perf_counter()
            (result,) = list(evaluator.evaluate([(f"r{i}", program.text)]))
            walls.append(time.perf_counter() - began)
            fits.append(result.metrics["seconds"])
            builds.append(result.metrics["build_seconds"])
    return {"seed": seed_name, "samples": samples, "params": result.metrics["params"],
            "wall": statistics.median(walls), "fit": statistics.median(fits),
            "build": statistics.median(builds), "loss": result.score}


def cpu_run(label: str, folder: Path, **overrides: Any) -> dict[str, Any]:
    run = Run(folder / label, preset("cpu").with_overrides(**overrides))
    began = time.perf_counter()
    summary = run.execute()
    run.close()
    return {"run": label, "seed_loss": summary.seed_score, "best_loss": summary.best_score,
            "evaluations": summary.evaluations, "seconds": time.perf_counter() - began}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", default="t5,random,best-of-n")
    parser.add_argument("--skip-runs", action="store_true")
    parser.add_argument("--skip-evals", action="store_true")
    parser.add_argument("--draw-rounds", type=int, default=None,
                        help="override the preset's draws per batch (1: keep repeats)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    print(machine_header())
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        starts = worker_startup(args.repeats)
        start = statistics.median(starts)
        out["worker_startup"] = starts
        print(f"worker start-up (import torch + transformers): median {start:.2f} s "
              f"of {len(starts)}")
        print("| seed | params | few-shot samples | evaluation (wall) | of which training "
              "| build | start-up share if a process were started per candidate |")
        print("|---|---|---|---|---|---|---|")
        out["evaluations"] = []
        cases = () if args.skip_evals else (("tiny", 256), ("tiny", 1024), ("paper", 256),
                                            ("paper", 1024))
        for seed_name, samples in cases:
            r = evaluation_seconds(seed_name, samples, args.repeats, folder)
            out["evaluations"].append(r)
            share = start / (start + r["wall"])
            print(f"| {seed_name} | {r['params'] / 1e6:.1f} M | {samples} | {r['wall']:.2f} s | "
                  f"{r['fit']:.2f} s | {r['build']:.2f} s | {share:.0%} |")
        if not args.skip_runs:
            variants = {
                "t5": {}, "random": {"proposer": "random"},
                "best-of-n": {"proposer": "random", "strategy": "best-of-n"},
            }
            out["runs"] = []
            print("\n| cpu preset run | seed loss | best loss | change | evaluations | wall |")
            print("|---|---|---|---|---|---|")
            for label in args.runs.split(","):
                r = cpu_run(label, folder, draw_rounds=args.draw_rounds, **variants[label])
                out["runs"].append(r)
                change = 100 * (r["best_loss"] / r["seed_loss"] - 1)
                print(f"| {label} | {r['seed_loss']:.4f} | {r['best_loss']:.4f} | "
                      f"{change:+.1f}% | {r['evaluations']} | {r['seconds'] / 60:.1f} min |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
