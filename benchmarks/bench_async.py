"""Utilisation at scale: the share of worker time spent evaluating, `--strategy greedy`
against `--strategy async`, on a local Ray instance that declares N CPUs.

The objective is synthetic (`synthetic_objective.py`): a cheap function of the site
values plus a sleep of 1-3 s drawn per candidate, so the figures measure how busy the
search loop keeps W evaluation workers, not how fast a model trains. The proposer is
`random` (its cost is not the question). Each configuration:

- starts a local Ray instance with ``ray.init(num_cpus=N)`` and W = N evaluation workers
  (``--threads 1``: one CPU each), and waits until every worker has started (torch
  imported) before the run, so start-up is not counted as idle time;
- runs E=1 episode of the same number of candidates for both strategies: greedy in
  batches of C=8 (the paper protocol's C), async with one candidate per free worker;
- utilisation = sum of the evaluation time inside the workers (each result's own
  ``wall_seconds``) / (W x the span from the seed's result to the last result).

Greedy cannot exceed C / W (a batch of 8 on 32 workers leaves 24 idle), and less than
that, because a batch waits for its slowest candidate. Per-worker memory (the sandbox
worker's resident set, torch imported; plus its Ray actor process) is printed, so the
largest W a machine holds can be read off.

Usage::

    python benchmarks/bench_async.py [--sizes 8,32,64] [--per-worker 8] [--sleep 1,3]
        [--strategies greedy,async] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
from _common import machine_header

from deepphoenix.executor._executor import EXECUTORS, ExecutorSettings
from deepphoenix.executor._ray import RayExecutor
from deepphoenix.search import Run, RunConfig
from deepphoenix.store import RunStore

HERE = Path(__file__).parent
CANDIDATES = 8  # C: the paper protocol's batch


_EXECUTORS: list[RayExecutor] = []


def _warm_ray(settings: ExecutorSettings) -> RayExecutor:
    """The ray executor, returned once every evaluation worker has started."""
    executor = RayExecutor(settings)
    ray.get([slot.warm() for slot in executor.slots])
    _EXECUTORS[:] = [executor]
    return executor


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _memory() -> dict[str, float]:
    """Mean resident memory of this run's Ray actors, and of everything each one started
    (its sandbox worker process tree), now."""
    actors = [slot.pid() for slot in _EXECUTORS[0].slots] if _EXECUTORS else []
    parents: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
        except OSError:
            continue
        parent = re.search(r"^PPid:\s+(\d+)", status, re.M)
        if parent:
            parents[int(proc.name)] = int(parent.group(1))

    def root(pid: int) -> int | None:
        while pid in parents and pid not in actors:
            pid = parents[pid]
        return pid if pid in actors else None

    trees = [pid for pid in parents if pid not in actors and root(pid) is not None]
    return {"sandbox_processes": len(trees),
            "worker_mib": sum(_rss_mib(p) for p in trees) / max(1, len(actors)),
            "actor_mib": sum(_rss_mib(p) for p in actors) / max(1, len(actors))}


def measure(strategy: str, size: int, evaluations: int, folder: Path,
            objective: Path) -> dict[str, Any]:
    ray.init(num_cpus=size, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    memory: dict[str, float] = {}
    try:
        config = RunConfig(
            seed_source=str(HERE / "synthetic_program.py"),
            grammar=str(HERE / "synthetic.toml"), objective=f"{objective}:evaluate",
            proposer="random", strategy=strategy, episodes=1,
            batches=evaluations // CANDIDATES, candidates=CANDIDATES, workers=size,
            threads=1, executor="ray-warm", memory_limit_gb=0, timeout=120.0, seed=1)
        run_dir = folder / f"{strategy}-{size}"
        seen: dict[str, float] = {}

        def on_event(event: Any) -> None:
            seen.setdefault(event.kind, time.time())
            if event.kind == "episode_done" and not memory:
                memory.update(_memory())

        run = Run(run_dir, config, on_event=on_event)
        try:
            run.execute()
        finally:
            run.close()
    finally:
        ray.shutdown()
    with RunStore.open(run_dir) as store:
        variants = store.variants()
    seed = variants[0]
    done = [v for v in variants if v.hash != seed.hash and v.status == "scored"]
    begin = seed.scored_at or 0.0
    end = max(v.scored_at or 0.0 for v in done)
    busy = sum(float(v.metrics.get("wall_seconds", 0.0)) for v in done)
    span = end - begin
    return {"strategy": strategy, "cpus": size, "workers": size, "evaluations": len(done),
            "span_s": span, "busy_s": busy, "utilisation": busy / (size * span),
            "bound": min(1.0, CANDIDATES / size) if strategy == "greedy" else 1.0,
            "evaluations_per_s": len(done) / span, **memory}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8,32,64")
    parser.add_argument("--per-worker", type=int, default=8,
                        help="candidates per worker (rounded to batches of 8)")
    parser.add_argument("--sleep", default="1,3", help="LOW,HIGH seconds per evaluation")
    parser.add_argument("--strategies", default="greedy,async")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    load = os.getloadavg()
    print(machine_header(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start"
                         f"; ray {ray.__version__}"))
    EXECUTORS.register("ray-warm", _warm_ray)
    low, high = (float(x) for x in args.sleep.split(","))
    folder = Path(tempfile.mkdtemp(prefix="bench-async-"))
    objective = folder / "synthetic_objective.py"
    text = (HERE / "synthetic_objective.py").read_text()
    objective.write_text(re.sub(r"LOW, HIGH = .*", f"LOW, HIGH = {low!r}, {high!r}", text))
    rows = []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            evaluations = max(CANDIDATES, size * args.per_worker // CANDIDATES * CANDIDATES)
            for strategy in args.strategies.split(","):
                row = measure(strategy, size, evaluations, folder, objective)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print("| CPUs = workers | strategy | evaluations | span | utilisation | bound | "
          "evals/s | worker RSS | actor RSS |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['cpus']} | {r['strategy']} | {r['evaluations']} | {r['span_s']:.0f} s | "
              f"**{100 * r['utilisation']:.1f}%** | {100 * r['bound']:.0f}% | "
              f"{r['evaluations_per_s']:.2f} | {r.get('worker_mib', 0):.0f} MiB | "
              f"{r.get('actor_mib', 0):.0f} MiB |")
    load = os.getloadavg()
    print(f"# load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
