"""Utilisation at scale: the share of worker time spent evaluating, `--strategy greedy`
against `--strategy async`, on a local Ray instance that declares N CPUs.

The objective is synthetic (`synthetic_objective.py`): a cheap function of the site
values plus a sleep of 1-3 s drawn per candidate, so the figures measure how busy the
search loop keeps W evaluation workers, not how fast a model trains. The proposer is
`random` (its cost is not the question). Program and objective import only the standard
library, so the workers start without torch (`evaluation_preload`). Each configuration:

- starts a local Ray instance with ``ray.init(num_cpus=N)`` and W = N evaluation workers
  (``--threads 1``: one CPU each), and waits until every worker has started before the
  run, so start-up is not counted as idle time;
- runs E=1 episode of the same number of candidates for both strategies: greedy in
  batches of C=8 (the paper protocol's C), async with one candidate per free worker.

What counts. The run's worker time is W x span, where span runs from the moment the
seed's result is recorded (the search proper starts: the first proposal) to the moment
the last result is recorded. **Utilisation** is the share of it spent inside evaluations:
the sum over every evaluation of its ``wall_seconds``, measured in the worker from the
job's start (building the program) to its score. Everything else is overhead, split (for
runs that record per-job start times: async, or any strategy with ``--fidelity asha``)
into:

- *round trip*: dispatch to result minus the time inside the worker, per job: the
  evaluator's and executor's hand-off, Ray's task round trip, the worker's pipe, the
  result's way back, recording it;
- *loop gaps*: worker-seconds before the last job started during which a slot held no
  job: the driver proposing, grounding, writing to the store, deciding promotions;
- *drain*: worker-seconds after the last job started during which a slot held no job
  (the last wave waits for the slowest; more candidates per worker shrink it).

Greedy cannot exceed C / W (a batch of 8 on 32 workers leaves 24 idle), and less than
that, because a batch waits for its slowest candidate. Per-worker memory (the sandbox
worker's process tree, plus its Ray actor process, sampled once every worker has started,
before the timed span) is printed, so the largest W a machine holds can be read off.
``--profile`` prints the driver's cProfile (the search loop's thread, by own time).

Usage::

    python benchmarks/bench_async.py [--sizes 8,32,64] [--per-worker 8] [--sleep 1,3]
        [--strategies greedy,async] [--profile] [--json OUT]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import os
import pstats
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import ray
from _common import end_table, machine_header

from deepphoenix.engine import Run, RunConfig
from deepphoenix.executor import EXECUTORS, ExecutorSettings
from deepphoenix.executor._ray import RayExecutor
from deepphoenix.store import RunStore

HERE = Path(__file__).parent
CANDIDATES = 8  # C: the paper protocol's batch


_EXECUTORS: list[RayExecutor] = []
_MEMORY: dict[str, float] = {}


def _warm_ray(settings: ExecutorSettings) -> RayExecutor:
    """The ray executor, returned once every evaluation worker has started."""
    executor = RayExecutor(settings)
    ray.get([slot.warm() for slot in executor.slots])
    _EXECUTORS[:] = [executor]
    # Sampled here, before the timed span: walking /proc in the search loop's thread
    # would hold it for a second or more at 32 workers.
    _MEMORY.clear()
    _MEMORY.update(_memory())
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


def breakdown(store: RunStore, workers: int) -> dict[str, Any]:
    """Where the W x span worker-seconds of a run went (see the module docstring)."""
    variants = store.variants()
    seed = variants[0]
    begin = seed.scored_at or 0.0
    rows = [r for r in store.rungs() if r["finished_at"] is not None]
    if not rows:  # greedy at full fidelity keeps no per-job start times
        done = [v for v in variants[1:] if v.scored_at is not None]
        end = max(v.scored_at or 0.0 for v in done)
        inside = sum(float(v.metrics.get("wall_seconds") or 0.0) for v in done)
        span = end - begin
        return {"evaluations": len(done), "span_s": span, "busy_s": inside,
                "utilisation": inside / (workers * span), "round_trip": None,
                "loop_gaps": None, "drain": None, "round_trip_ms": None,
                "evaluations_per_s": len(done) / span}
    end = max(r["finished_at"] for r in rows)
    span = end - begin
    total = workers * span
    inside = sum(float(r["metrics"].get("wall_seconds") or 0.0) for r in rows)
    held = sum(r["finished_at"] - r["started_at"] for r in rows)
    last_start = max(r["started_at"] for r in rows)
    drain = workers * (end - last_start) - sum(max(0.0, r["finished_at"] - last_start)
                                               for r in rows)
    return {"evaluations": len(rows), "span_s": span, "busy_s": inside,
            "utilisation": inside / total, "round_trip": (held - inside) / total,
            "loop_gaps": (total - held - drain) / total, "drain": drain / total,
            "round_trip_ms": 1000 * (held - inside) / len(rows),
            "evaluations_per_s": len(rows) / span}


def measure(strategy: str, size: int, evaluations: int, folder: Path,
            objective: Path, profile: bool) -> dict[str, Any]:
    ray.init(num_cpus=size, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    profiler = cProfile.Profile() if profile else None
    try:
        config = RunConfig(
            seed_source=str(HERE / "synthetic_program.py"),
            grammar=str(HERE / "synthetic.toml"), objective=f"{objective}:evaluate",
            proposer="random", strategy=strategy, episodes=1,
            batches=evaluations // CANDIDATES, candidates=CANDIDATES, workers=size,
            threads=1, executor="ray-warm", memory_limit_gb=0, timeout=120.0, seed=1)
        run_dir = folder / f"{strategy}-{size}"

        run = Run(run_dir, config)
        try:
            if profiler is not None:
                profiler.enable()
            run.execute()
        finally:
            if profiler is not None:
                profiler.disable()
            run.close()
    finally:
        ray.shutdown()
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        print(f"# driver profile, {strategy}, {size} workers (tottime):")
        print(out.getvalue())
    with RunStore.open(run_dir) as store:
        found = breakdown(store, size)
    return {"strategy": strategy, "cpus": size, "workers": size, **found,
            "bound": min(1.0, CANDIDATES / size) if strategy == "greedy" else 1.0,
            **_MEMORY}


def _share(row: dict[str, Any], key: str) -> str:
    if row.get(key) is None:
        return "–"
    text = f"{100 * row[key]:.1f}%"
    return text + (f" ({row['round_trip_ms']:.0f} ms/job)" if key == "round_trip" else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8,32,64")
    parser.add_argument("--per-worker", type=int, default=8,
                        help="candidates per worker (rounded to batches of 8)")
    parser.add_argument("--sleep", default="1,3", help="LOW,HIGH seconds per evaluation")
    parser.add_argument("--strategies", default="greedy,async")
    parser.add_argument("--profile", action="store_true",
                        help="profile the driver (the search loop's thread) and print it")
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
                row = measure(strategy, size, evaluations, folder, objective, args.profile)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print("| CPUs = workers | strategy | evaluations | span | utilisation | round trip | "
          "loop gaps | drain | bound | evals/s | worker RSS | actor RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['cpus']} | {r['strategy']} | {r['evaluations']} | {r['span_s']:.0f} s | "
              f"**{100 * r['utilisation']:.1f}%** | {_share(r, 'round_trip')} | "
              f"{_share(r, 'loop_gaps')} | {_share(r, 'drain')} | {100 * r['bound']:.0f}% | "
              f"{r['evaluations_per_s']:.2f} | {r.get('worker_mib', 0):.0f} MiB | "
              f"{r.get('actor_mib', 0):.0f} MiB |")
    end_table(rows, args.json)


if __name__ == "__main__":
    main()
