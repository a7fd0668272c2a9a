"""Executors: what `--executor ray` costs per evaluation against `local`, on this machine
and the same candidates (the cpu preset's evaluations: the tiny seed and random
refinements of it, 256 few-shot samples), and evaluations per hour with 1 and 2 workers
on each; then the numbers a paper-protocol plan needs (`--paper`: seconds per paper-seed
evaluation of 1,024 samples).

First the fixed cost: a trivial job's round trip through each executor (what the
executor adds to every evaluation, whatever the candidate). Then each configuration warms
its workers first (torch imported, the data sent), so the
figures are steady-state: per-evaluation wall time as the run sees it, and the part of it
that is not the evaluation itself (the worker's own `wall_seconds`). Ray runs on a local
instance started once (127.0.0.1), not counted per evaluation; its start-up is printed.

Usage::

    python benchmarks/bench_executor.py [--candidates 8] [--rounds 2] [--workers 1,2]
        [--executors local,ray] [--roundtrips 50] [--roundtrips-only] [--paper] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine_header

from deepphoenix.engine import preset
from deepphoenix.evaluator import EvalSettings, Evaluator
from deepphoenix.executor import ExecutorSettings, get_executor
from deepphoenix.grammar import load_grammar
from deepphoenix.mutator import Program, parse_program
from deepphoenix.proposers import Refiner, make_dataset
from deepphoenix.proposers._t5 import prepare_data
from deepphoenix.sandbox import NamedJob, WorkerSettings
from deepphoenix.seeds import seed_source

DIAGNOSTICS = "deepphoenix.sandbox._diagnostics:*"


def candidates(seed_name: str, count: int) -> tuple[Program, list[tuple[str, str]]]:
    """The seed and `count` distinct random refinements of it (fixed draw)."""
    program = parse_program(seed_source(seed_name), load_grammar("t5"))
    rng = random.Random(0)
    found: dict[str, str] = {}
    while len(found) < count:
        for proposal in Refiner(max_edits=1).propose(program, count, rng):
            variant = proposal.mutation.variant
            if proposal.mutation.ok and variant is not None and len(found) < count:
                found.setdefault(variant.hash, variant.source)
    return program, list(found.items())


def roundtrip(name: str, rows: Path, jobs: int) -> list[float]:
    """Seconds per trivial job (a warm worker, one job at a time, a `rows` path in its
    arguments as an evaluation has): what the executor itself adds to each evaluation."""
    executor = get_executor(name, ExecutorSettings(
        workers=1, worker=WorkerSettings(threads=1, preload=(), device="cpu",
                                         extra_jobs=(DIAGNOSTICS,))))
    try:
        job = NamedJob(f"{DIAGNOSTICS[:-2]}:remember", {"value": 1, "rows": str(rows)},
                       input_files=("rows",))
        list(executor.run_all([("warm", job, 60.0)]))
        times = []
        for i in range(jobs):
            began = time.perf_counter()
            ((_, result),) = list(executor.run_all([(i, job, 60.0)]))
            times.append(time.perf_counter() - began)
            assert result.ok, result.error
    finally:
        executor.close()
    return times


def measure(name: str, workers: int, program: Program, jobs: list[tuple[str, str]],
            settings: EvalSettings, rounds: int) -> dict[str, Any]:
    """Warm `workers` workers, then evaluate `jobs` `rounds` times as one batch each."""
    config = preset("cpu").with_overrides(workers=workers)
    executor = get_executor(name, ExecutorSettings(
        workers=workers, worker=WorkerSettings(threads=config.worker_threads(),
                                               memory_limit=config.memory_limit_bytes(),
                                               device="cpu")))
    try:
        evaluator = Evaluator(executor, settings)
        began = time.perf_counter()
        warm = [(f"warm{i}", program.text) for i in range(workers)]
        list(evaluator.evaluate(warm))
        warm_seconds = time.perf_counter() - began
        batches, overheads, inside, scores = [], [], [], {}
        for round_ in range(rounds):
            began = time.perf_counter()
            done: dict[str, float] = {}
            for result in evaluator.evaluate([(f"{h}#{round_}", s) for h, s in jobs]):
                done[result.hash] = time.perf_counter() - began
                scores[result.hash.split("#")[0]] = result.score
                if result.metrics.get("wall_seconds") is not None:
                    inside.append(float(result.metrics["wall_seconds"]))
            batches.append(time.perf_counter() - began)
            if workers == 1:  # sequential: the gaps between completions are per job
                ends = sorted(done.values())
                walls = [b - a for a, b in zip([0.0, *ends[:-1]], ends, strict=True)]
                overheads.extend(walls)
    finally:
        executor.close()
    per_batch = statistics.median(batches)
    return {"executor": name, "workers": workers, "warm_seconds": warm_seconds,
            "batch_seconds": batches, "per_eval_wall": per_batch / len(jobs),
            "per_eval_inside": statistics.median(inside) if inside else None,
            "evals_per_hour": 3600 * len(jobs) / per_batch, "scores": scores,
            "job_walls": overheads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--executors", default="local,ray")
    parser.add_argument("--paper", action="store_true",
                        help="also time paper-seed evaluations of 1,024 samples (local, ray)")
    parser.add_argument("--roundtrips", type=int, default=50)
    parser.add_argument("--roundtrips-only", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    load = os.getloadavg()
    print(machine_header(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start"))
    names = args.executors.split(",")
    out: dict[str, Any] = {"load_start": load, "results": []}
    ray_started = None
    if "ray" in names:
        import ray

        began = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
        ray_started = time.perf_counter() - began
        out["ray_start_seconds"] = ray_started
        print(f"ray.init (a local instance): {ray_started:.1f} s")
    try:
        config = preset("cpu")
        with tempfile.TemporaryDirectory() as tmp:
            program, jobs = candidates("tiny", args.candidates)
            data = prepare_data(make_dataset(program, config.fewshot_samples, seed=0),
                                "source", Path(tmp) / "tiny", config.vocab_size)
            settings = EvalSettings(rows=data.tokens_path, vocab_size=data.vocab_size,
                                    samples=config.fewshot_samples,
                                    batch_size=config.fewshot_batch_size, timeout=600)
            print(f"\nper-job round trip (a trivial job, {args.roundtrips} one at a time)")
            for name in names:
                times = roundtrip(name, data.tokens_path, args.roundtrips)
                out[f"roundtrip_{name}"] = times
                print(f"| {name} | median {1000 * statistics.median(times):.1f} ms | "
                      f"p90 {1000 * sorted(times)[int(0.9 * len(times))]:.1f} ms |", flush=True)
            if args.roundtrips_only:
                return
            print(f"\ncpu preset evaluations: {len(jobs)} candidates x {args.rounds} rounds")
            print("| executor | workers | warm-up | per evaluation (wall) | inside the worker "
                  "| evaluations/hour |")
            print("|---|---|---|---|---|---|")
            by: dict[tuple[str, int], dict[str, Any]] = {}
            for workers in (int(w) for w in args.workers.split(",")):
                for name in names:
                    r = measure(name, workers, program, jobs, settings, args.rounds)
                    by[name, workers] = r
                    out["results"].append(r)
                    inside = (f"{r['per_eval_inside']:.2f} s" if r["per_eval_inside"]
                              else "-")
                    print(f"| {name} | {workers} | {r['warm_seconds']:.1f} s | "
                          f"{r['per_eval_wall']:.2f} s | {inside} | "
                          f"{r['evals_per_hour']:.0f} |", flush=True)
            for workers in (int(w) for w in args.workers.split(",")):
                if ("local", workers) in by and ("ray", workers) in by:
                    local, remote = by["local", workers], by["ray", workers]
                    same = local["scores"] == remote["scores"]
                    print(f"ray vs local, {workers} worker(s): "
                          f"{100 * (remote['per_eval_wall'] / local['per_eval_wall'] - 1):+.1f}%"
                          f" per evaluation; same scores: {same}")
            if args.paper:
                program, jobs = candidates("paper", 1)
                data = prepare_data(make_dataset(program, 1024, seed=0), "source",
                                    Path(tmp) / "paper", config.vocab_size)
                settings = EvalSettings(rows=data.tokens_path, vocab_size=data.vocab_size,
                                        samples=1024, batch_size=16, timeout=1800)
                print("\npaper seed, 1,024 samples (one evaluation after a warm-up)")
                for name in names:
                    r = measure(name, 1, program, jobs, settings, 1)
                    out.setdefault("paper", []).append(r)
                    print(f"| {name} | {r['per_eval_wall']:.1f} s per evaluation "
                          f"(inside the worker {r['per_eval_inside']:.1f} s) |", flush=True)
    finally:
        if ray_started is not None:
            import ray

            ray.shutdown()
        load = os.getloadavg()
        out["load_end"] = load
        print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        if args.json:
            args.json.write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
