"""Reproduce the neural-quine write-up's findings with deepphoenix's quine seeds and the
self-replication objective, row by row, over several seeds.

Each row is a seed with edits at the quine grammar's sites (applied by the mutator, as a
search would), trained by its own ``train()`` for a fixed number of steps (no time budget,
so the figures do not depend on the machine's load) and scored by the objective's trusted
code: relative error (RMSE / std of the weights), RMSE, the weights' range, the share of
weights at their median (constant collapse), and whether the quine is trivial.

    python benchmarks/bench_quines.py --seeds 0 1 2 --steps 1000 --out quines.jsonl
    python benchmarks/bench_quines.py --rows source --seeds 0     # steps to 100%

Results are appended to --out as JSON lines as they finish (a killed run keeps them);
the table at the end summarises every line in the file for the rows asked.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import append_result, machine_header, read_results

from deepphoenix.grammar import load_grammar
from deepphoenix.mutator import parse_program
from deepphoenix.objectives._replication import TrivialQuine, self_replication
from deepphoenix.objectives._user import ObjectiveContext
from deepphoenix.seeds import seed_source
from deepphoenix.training import exec_program

# name -> (seed, edits, what the write-up reports). Regeneration alternates with gradient
# steps (every 2), as in the write-up's code; its normalised runs keep regeneration on.
ROWS: dict[str, tuple[str, dict[str, Any], str]] = {
    "coords-plain": ("quine-coords", {"norm": "none", "regenerate_every": 0},
                     "RMSprop best; residual errors at the scale of the weights"),
    "coords-regen": ("quine-coords", {"norm": "none", "regenerate_every": 2},
                     "converges almost at once to the zero quine"),
    "coords-batch": ("quine-coords", {"regenerate_every": 2, "norm": "batch"},
                     "non-trivial, imperfect quine, low error (batch norm the better)"),
    "coords-instance": ("quine-coords", {"regenerate_every": 2, "norm": "instance"},
                        "non-trivial, imperfect quine, low error"),
    "coords-64": ("quine-coords", {"size": 64, "regenerate_every": 2, "norm": "batch"},
                  "64x64, weights in [-2.1, 0.8], RMSE ~2e-7"),
    "onehot-naive": ("quine-onehot", {}, "best one-hot result: naive training"),
    "onehot-regen": ("quine-onehot", {"regenerate_every": 2},
                     "weights driven to ~1e-22 (float limits), MSE 0.0"),
    "onehot-batch": ("quine-onehot", {"norm": "batch"},
                     "considerably worse; output does not resemble the weights"),
    "onehot-instance": ("quine-onehot", {"norm": "instance"},
                        "considerably worse; output does not resemble the weights"),
    "rnn-lstm": ("quine-rnn", {"cell": "lstm"},
                 "collapses to nearly constant weights except at the ends"),
    "rnn-gru": ("quine-rnn", {"cell": "gru"},
                "collapses to nearly constant weights except at the ends"),
    "source": ("quine-source", {}, "trained until next-character accuracy is 100%"),
}


def variant_text(seed: str, edits: dict[str, Any], steps: int | None) -> str:
    program = parse_program(seed_source(seed), load_grammar("quine"))
    changes = dict(edits)
    if steps is not None and "steps" in program.values:
        changes["steps"] = steps
    changes = {k: v for k, v in changes.items() if program.values.get(k) != v}
    if not changes:
        return program.text
    mutation = program.apply(changes)
    if not mutation.ok or mutation.variant is None:
        raise SystemExit(f"{seed} {changes}: {mutation.outcome.value}: {mutation.reason}")
    return mutation.variant.source


def measure(row: str, seed: int, steps: int | None) -> dict[str, Any]:
    name, edits, _ = ROWS[row]
    text = variant_text(name, edits, steps)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-quines-") as folder:
        program = exec_program(text, Path(folder), seed)
        # Progress as it comes (the source row's accuracy every 20 steps), so a run cut
        # short still shows how far it got.
        ctx = ObjectiveContext("cpu", seed, Path(folder), lambda step, value: print(
            f"  {row} seed {seed} step {step}: {value:.6g}", flush=True))
        try:
            metrics = self_replication(program, ctx)
            trivial = ""
        except TrivialQuine as found:
            metrics, trivial = found.metrics, str(found)
    metrics.pop("reports", None)
    return {"row": row, "seed": seed, "steps": steps, "trivial": trivial,
            "seconds": time.perf_counter() - began, **metrics}


def summarise(lines: list[dict[str, Any]], rows: list[str]) -> str:
    out = ["| row | write-up | seeds | relative error (median) | RMSE (median) | "
           "weights (range) | at median | trivial | steps to 100% |",
           "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        found = [x for x in lines if x["row"] == row]
        if not found:
            continue

        def med(key: str, found: list[dict[str, Any]] = found) -> float:
            return statistics.median(float(x[key]) for x in found if key in x)

        seeds = ",".join(str(x["seed"]) for x in found)
        trivial = sum(bool(x["trivial"]) for x in found)
        if row == "source":
            acc = ", ".join(f"{x.get('char_accuracy', 0):.3f}" for x in found)
            taken = ", ".join(str(x.get("train_steps", "?")) for x in found)
            out.append(f"| {row} | {ROWS[row][2]} | {seeds} | char accuracy {acc} | | | | "
                       f"| {taken} |")
            continue
        low = min(float(x["actual_min"]) for x in found)
        high = max(float(x["actual_max"]) for x in found)
        out.append(f"| {row} | {ROWS[row][2]} | {seeds} | {med('relative_error'):.3g} | "
                   f"{med('rmse'):.3g} | [{low:.3g}, {high:.3g}] | {med('at_median'):.0%} | "
                   f"{trivial}/{len(found)} | |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default=",".join(r for r in ROWS if r != "source"),
                        help="comma-separated rows: " + ", ".join(ROWS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps of every row (default: each seed's own; the "
                             "quine grammar allows 100, 200, 500, 1000, 2000, 4000)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("quines.jsonl"))
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = args.rows.split(",")
    unknown = sorted(set(rows) - set(ROWS))
    if unknown:
        parser.error(f"unknown rows: {', '.join(unknown)}")
    print(machine_header(f"torch threads {args.threads}"))
    if not args.table_only:
        for row in rows:
            for seed in args.seeds:
                steps = None if row == "source" else args.steps
                line = measure(row, seed, steps)
                append_result(args.out, line)
                print(f"{row} seed {seed}: relative {line.get('relative_error', '-')} "
                      f"{line['trivial'] or ''} ({line['seconds']:.1f} s)", flush=True)
    lines = read_results(args.out)
    print(summarise(lines, rows))


if __name__ == "__main__":
    main()
