"""How the `fewshot` and `val-loss` objectives rank the same variants.

Takes the scored variants of a finished run (by default it makes one: the `cpu` preset),
scores each again under `val-loss` on the run's own data (the same few-shot epoch, then
the held-out pairs at the end of the run's refinement dataset), and reports the Spearman
rank correlation of the two scores and whether both pick the same best variant.

    python benchmarks/bench_objectives.py [--run-dir RUN_DIR] [--heldout 64] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_header

from deepphoenix.engine import Run, derive_seed, preset
from deepphoenix.evaluator import EvalSettings, Evaluator
from deepphoenix.executor import ExecutorSettings, LocalExecutor
from deepphoenix.objectives import resolve_objective
from deepphoenix.sandbox import WorkerSettings
from deepphoenix.store import RunStore


def ranks(values: list[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    result = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in range(start, end + 1):
            result[order[k]] = (start + end) / 2 + 1
        start = end + 1
    return result


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks."""
    ra, rb = ranks(a), ranks(b)
    mean_a, mean_b = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - mean_a) * (y - mean_b) for x, y in zip(ra, rb, strict=True))
    var_a = sum((x - mean_a) ** 2 for x in ra)
    var_b = sum((y - mean_b) ** 2 for y in rb)
    return cov / (var_a * var_b) ** 0.5


def make_run(folder: Path) -> Path:
    run_dir = folder / "cpu-run"
    run = Run(run_dir, preset("cpu"))
    try:
        run.execute()
    finally:
        run.close()
    return run_dir


def compare(run_dir: Path, heldout: int) -> dict[str, Any]:
    with RunStore.open(run_dir) as store:
        config = store.get_meta("config")
        scored = [v for v in store.variants() if v.status == "scored"]
    data = json.loads((run_dir / "data" / "data.json").read_text())
    samples = int(config["fewshot_samples"])
    if samples + heldout > int(data["pairs"]):
        raise SystemExit(f"the run has {data['pairs']} pairs: not enough for {samples} "
                         f"few-shot and {heldout} held-out")
    settings = EvalSettings(
        objective=resolve_objective("val-loss"), rows=run_dir / "data" / "tokens.json",
        vocab_size=int(data["vocab_size"]), samples=samples, heldout=heldout,
        batch_size=int(config["fewshot_batch_size"]), lr=float(config["fewshot_lr"]),
        seed=derive_seed(int(config["seed"]), "fewshot"), timeout=600.0)
    threads = max(1, (os.cpu_count() or 1) // 2)
    began = time.perf_counter()
    with LocalExecutor(ExecutorSettings(workers=2, worker=WorkerSettings(
            threads=threads, device="cpu"))) as executor:
        again = {r.hash: r for r in Evaluator(executor, settings).evaluate(
            [(v.hash, v.source) for v in scored])}
    seconds = time.perf_counter() - began
    rows: list[dict[str, Any]] = []
    for v in scored:
        result = again[v.hash]
        if v.score is not None and result.score is not None:
            rows.append({"hash": v.hash, "fewshot": v.score, "val_loss": result.score,
                         "rescored_fewshot": float(result.metrics["mean_loss"]),
                         "params": v.metrics.get("params")})
    fewshot = [r["fewshot"] for r in rows]
    val = [r["val_loss"] for r in rows]
    best_fewshot = min(rows, key=lambda r: r["fewshot"])
    best_val = min(rows, key=lambda r: r["val_loss"])
    return {
        "run_dir": str(run_dir), "variants": len(rows), "heldout_pairs": heldout,
        "spearman": spearman(fewshot, val),
        "fewshot_reproduced": max(abs(r["fewshot"] - r["rescored_fewshot"]) for r in rows),
        "best_fewshot": best_fewshot, "best_val_loss": best_val,
        "same_best": best_fewshot["hash"] == best_val["hash"],
        "rescoring_seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="a finished run of the refinement task (default: run the cpu "
                             "preset now)")
    parser.add_argument("--heldout", type=int, default=64, help="held-out pairs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    print(machine_header(), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-objectives-") as folder:
        run_dir = args.run_dir or make_run(Path(folder))
        result = compare(run_dir, args.heldout)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['variants']} scored variants of {result['run_dir']}; "
          f"{result['heldout_pairs']} held-out pairs")
    print(f"Spearman rank correlation fewshot vs val-loss: {result['spearman']:.3f}")
    print(f"fewshot scores reproduced within {result['fewshot_reproduced']:.2e}")
    for key in ("best_fewshot", "best_val_loss"):
        b = result[key]
        print(f"{key}: {b['hash'][:12]} fewshot {b['fewshot']:.4f} val-loss "
              f"{b['val_loss']:.4f} params {b['params']}")
    print(f"same best variant: {result['same_best']}; rescoring took "
          f"{result['rescoring_seconds']:.0f} s")


if __name__ == "__main__":
    main()
