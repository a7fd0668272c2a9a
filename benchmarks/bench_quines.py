"""Neural quines against the write-up, at its step counts: the reproduction table, a
recipe over several initialisation seeds, and how the error scales with N.

Every measurement is a quine seed with edits at the `quine-sized` grammar's sites (the
`quine` grammar's plus `size`; applied by the mutator, as a search would), trained by its
own ``train()`` for a fixed number of steps (no time budget, so the figures do not depend
on the machine's load) and scored by the ``self-replication`` objective's trusted code:
relative error (RMSE / std of the weights), RMSE, the weights' range, the share of
weights at their median, whether the quine is trivial, and the step whose weights
``train`` kept (the seeds keep their best step, as the write-up's code does).

    python benchmarks/bench_quines.py table [--rows coords-64-writeup] [--seeds 0 1 2]
    python benchmarks/bench_quines.py recipe NAME --edits gradient_every=0 relax=0.2 \\
        --sizes 64 --seeds 0 1 2 3 4 --steps 20000
    python benchmarks/bench_quines.py scaling --recipes writeup NAME --sizes 8 16 32 64 \\
        --seeds 0 1 2 --target 1e-6 [--plot benchmarks/quine-scaling.svg]
    python benchmarks/bench_quines.py report [--plot benchmarks/quine-scaling.svg]

`scaling` stops a run once its relative error is at or below --target (checked every
100 steps), so a converged quine does not spend its remaining steps; the kept weights are
then the best so far. Results are appended to --out as JSON lines as they finish, and a
measurement already in the file is skipped, so an interrupted run continues; `report`
prints every table from the file alone. A recipe given to `recipe` is remembered in the
file by its name, so `scaling --recipes NAME` reuses it.
"""

from __future__ import annotations

import argparse
import json
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
from deepphoenix.objectives._replication import TrivialQuine, _trivial, self_replication
from deepphoenix.objectives._user import ObjectiveContext
from deepphoenix.seeds import seed_source
from deepphoenix.training import exec_program

# The write-up's procedures in effect, read from its code: regeneration assigns a new
# Parameter the optimizer never sees (and the gradients are never zeroed), so no gradient
# step reaches the model; every other epoch regenerates, W <- f(W), the best epoch kept.
WRITEUP = {"gradient_every": 0, "regenerate_every": 2}
# Its described recipe, our seed's default: RMSprop 1e-2 steps, regeneration every other.
RECIPE = {"gradient_every": 1, "regenerate_every": 2}


class Row:
    def __init__(self, seed: str, edits: dict[str, Any], steps: int, writeup: str) -> None:
        self.seed, self.edits, self.steps, self.writeup = seed, edits, steps, writeup


# The write-up's step counts: 20,000 epochs for the normalised coordinate quine, 1,000
# for the unnormalised one (quine_image_approx_coords.py), 10,000 for the one-hot quine.
ROWS: dict[str, Row] = {
    "coords-plain": Row("quine-coords", {"norm": "none", "regenerate_every": 0}, 20000,
                        "RMSprop best; residual errors at the scale of the weights"),
    "coords-regen": Row("quine-coords", {"norm": "none", **RECIPE}, 20000,
                        "converges almost at once to the zero quine"),
    "coords-regen-writeup": Row("quine-coords", {"norm": "none", "gradient_every": 0,
                                                 "regenerate_every": 1}, 1000,
                                "(its code: W <- f(W) every epoch) the zero quine"),
    "coords-batch": Row("quine-coords", {"norm": "batch", **RECIPE}, 20000,
                        "non-trivial, imperfect quine, low error (batch norm the better)"),
    "coords-batch-writeup": Row("quine-coords", {"norm": "batch", **WRITEUP}, 20000,
                                "(its code) non-trivial quine, low error"),
    "coords-instance": Row("quine-coords", {"norm": "instance", **RECIPE}, 20000,
                           "non-trivial, imperfect quine, low error"),
    "coords-instance-writeup": Row("quine-coords", {"norm": "instance", **WRITEUP}, 20000,
                                   "(its code, instance norm) non-trivial, low error"),
    "coords-64": Row("quine-coords", {"size": 64, "norm": "batch", **RECIPE}, 20000,
                     "64x64, weights in [-2.1, 0.8], RMSE ~2e-7"),
    "coords-64-writeup": Row("quine-coords", {"size": 64, "norm": "batch", **WRITEUP},
                             20000, "(its code) 64x64, weights in [-2.1, 0.8], RMSE ~2e-7"),
    "onehot-naive": Row("quine-onehot", {}, 10000, "best one-hot result: naive training"),
    "onehot-64": Row("quine-onehot", {"size": 64}, 10000,
                     "(its code is 64 x 64) best one-hot result: naive training"),
    "onehot-regen": Row("quine-onehot", {"regenerate_every": 2}, 10000,
                        "weights driven to ~1e-22 (float limits), MSE 0.0"),
    "onehot-batch": Row("quine-onehot", {"norm": "batch"}, 10000,
                        "considerably worse; output does not resemble the weights"),
    "onehot-instance": Row("quine-onehot", {"norm": "instance"}, 10000,
                           "considerably worse; output does not resemble the weights"),
    "rnn-lstm": Row("quine-rnn", {"cell": "lstm"}, 2000,
                    "collapses to nearly constant weights except at the ends"),
    "rnn-gru": Row("quine-rnn", {"cell": "gru"}, 2000,
                   "collapses to nearly constant weights except at the ends"),
}
NAMED_RECIPES = {"writeup": {"norm": "batch", **WRITEUP}, "recipe": {"norm": "batch", **RECIPE}}


def variant_text(seed: str, edits: dict[str, Any]) -> str:
    """The seed with `edits` at its sites (the `quine-sized` grammar: `size` too)."""
    program = parse_program(seed_source(seed), load_grammar("quine-sized"))
    changes = {k: v for k, v in edits.items() if program.values.get(k) != v}
    if not changes:
        return program.text
    mutation = program.apply(changes)
    if not mutation.ok or mutation.variant is None:
        raise SystemExit(f"{seed} {changes}: {mutation.outcome.value}: {mutation.reason}")
    return mutation.variant.source


class _Target(ObjectiveContext):
    """An objective context that stops training once the weights replicate to `target`
    relative error (checked every `every` calls of should_stop, i.e. steps)."""

    def __init__(self, program: dict[str, Any], target: float, every: int = 100,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.program, self.target, self.every = program, target, every
        self.calls = 0
        self.reached_at: int | None = None

    def should_stop(self) -> bool:
        self.calls += 1
        if self.calls % self.every:
            return False
        predicted, actual = self.program["replicate"](self.program["model"])
        relative = float((predicted - actual).double().pow(2).mean().sqrt()
                         / actual.double().std())
        if relative <= self.target:
            self.reached_at = self.calls - 1
            return True
        return False


def measure(seed_name: str, edits: dict[str, Any], steps: int, seed: int,
            target: float | None = None, label: str = "") -> dict[str, Any]:
    """Train the seed with `edits` for `steps` from torch seed `seed`; its scores."""
    text = variant_text(seed_name, {**edits, "steps": steps})
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-quines-") as folder:
        program = exec_program(text, Path(folder), seed)

        def shown(step: int, value: float) -> None:
            if step % 2000 == 0:
                print(f"  {label} seed {seed} step {step}: {value:.4g}", flush=True)

        kwargs: dict[str, Any] = {"device": "cpu", "seed": seed, "workdir": Path(folder),
                                  "on_report": shown}
        ctx = (_Target(dict(program), target, **kwargs) if target is not None
               else ObjectiveContext(**kwargs))
        try:
            metrics = self_replication(program, ctx)
            trivial = ""
        except TrivialQuine as found:
            metrics, trivial = dict(found.metrics), str(found)
    metrics.pop("reports", None)
    line = {"seed": seed, "steps": steps, "trivial": trivial,
            "seconds": time.perf_counter() - began, **metrics}
    if target is not None:
        line["target"] = target
        line["reached_at"] = getattr(ctx, "reached_at", None)
    return line


def _key(line: dict[str, Any]) -> tuple[Any, ...]:
    return (line["kind"], line["row"], line.get("size"), line["seed"], line["steps"],
            line.get("target"))


def _run(out: Path, todo: list[dict[str, Any]]) -> None:
    """Measure each item of `todo` not yet in `out` (kind, row, seed_name, edits, size,
    seed, steps, target), appending as it goes."""
    done = {_key(x) for x in read_results(out)}
    for item in todo:
        if _key(item) in done:
            continue
        label = f"{item['row']} N={item.get('size')}"
        line = measure(item["seed_name"], item["edits"], item["steps"], item["seed"],
                       item.get("target"), label)
        line = {**{k: v for k, v in item.items() if k != "seed_name"}, **line}
        append_result(out, line)
        print(f"{label} seed {item['seed']}: relative {line.get('relative_error', '-'):.3g} "
              f"rmse {line.get('rmse', float('nan')):.3g} step kept {line.get('best_step')} "
              f"{line['trivial'] or ''} ({line['seconds']:.1f} s)", flush=True)


def _recipes(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = dict(NAMED_RECIPES)
    for line in lines:
        if line["kind"] == "recipe":
            found.setdefault(line["row"], {k: v for k, v in line["edits"].items()
                                           if k != "size"})
    return found


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


# -- tables --------------------------------------------------------------------------------

def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.2g}"


def trivial(x: dict[str, Any]) -> str:
    """Why a measured weight quine is trivial by the objective as it is now (a line
    measured before a flag was added is judged by its recorded metrics), or ""."""
    if x.get("trivial") or "predicted_std" not in x:
        return str(x.get("trivial") or "")
    return _trivial(x, x.get("rms_before"))


def table_report(lines: list[dict[str, Any]]) -> str:
    out = ["| row | write-up | N | steps | seeds | relative error | RMSE | weights (range) | "
           "at median | trivial | step kept |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row, spec in ROWS.items():
        found = [x for x in lines if x["kind"] == "table" and x["row"] == row]
        if not found:
            continue
        found.sort(key=lambda x: x["seed"])
        seeds = ", ".join(str(x["seed"]) for x in found)
        rel = ", ".join(_g(x.get("relative_error")) for x in found)
        rmse = ", ".join(_g(x.get("rmse")) for x in found)
        low = min(float(x["actual_min"]) for x in found)
        high = max(float(x["actual_max"]) for x in found)
        at = ", ".join(f"{x['at_median']:.0%}" for x in found)
        kept = ", ".join(str(x.get("best_step", "-")) for x in found)
        flagged = sum(bool(trivial(x)) for x in found)
        out.append(f"| {row} | {spec.writeup} | {found[0]['size']} | {spec.steps} | {seeds} "
                   f"| {rel} | {rmse} | [{low:.3g}, {high:.3g}] | {at} | {flagged}/{len(found)}"
                   f" | {kept} |")
    return "\n".join(out)


def recipe_report(lines: list[dict[str, Any]], threshold: float = 1e-6) -> str:
    out = [f"| recipe | N | steps | seeds | RMSE | reach RMSE <= {threshold:g} | step kept | "
           "weights (range) | seconds (median) |", "|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for x in lines:
        if x["kind"] in ("recipe", "table") and x.get("target") is None:
            groups.setdefault((x["row"], x["size"], x["steps"]), []).append(x)
    for (row, size, steps), found in groups.items():
        if len(found) < 5:
            continue
        found.sort(key=lambda x: x["seed"])
        hits = [x for x in found if float(x.get("rmse", 1)) <= threshold and not trivial(x)]
        reached = f"{len(hits)} of {len(found)}"
        first = [x for x in found if x["seed"] in range(5)]
        if len(first) == 5 and len(found) > 5:
            reached += f" (seeds 0-4: {sum(x in hits for x in first)} of 5)"
        ranges = ", ".join(f"[{x['actual_min']:.3g}, {x['actual_max']:.3g}]" for x in found)
        out.append(f"| {row} | {size} | {steps} | {', '.join(str(x['seed']) for x in found)} | "
                   f"{', '.join(_g(x.get('rmse')) for x in found)} | {reached} | "
                   f"{', '.join(str(x.get('best_step', '-')) for x in found)} | {ranges} | "
                   f"{statistics.median(x['seconds'] for x in found):.0f} |")
    return "\n".join(out)


def _scaling(lines: list[dict[str, Any]]) -> dict[str, dict[int, list[dict[str, Any]]]]:
    found: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for x in lines:
        if x["kind"] == "scaling":
            found.setdefault(x["row"], {}).setdefault(x["size"], []).append(x)
    return found


def scaling_report(lines: list[dict[str, Any]]) -> str:
    out = ["| recipe | N | seeds | relative error (each seed) | reached the target | at step "
           "| largest N: every seed / any seed reaches |", "|---|---|---|---|---|---|---|"]
    for row, sizes in _scaling(lines).items():
        every = max((n for n, xs in sizes.items() if all(
            x.get("reached_at") is not None for x in xs)), default=None)
        some = max((n for n, xs in sizes.items() if any(
            x.get("reached_at") is not None for x in xs)), default=None)
        for n in sorted(sizes):
            xs = sorted(sizes[n], key=lambda x: x["seed"])
            reached = sum(x.get("reached_at") is not None for x in xs)
            at = ", ".join(str(x.get("reached_at")) if x.get("reached_at") is not None
                           else "-" for x in xs)
            out.append(f"| {row} | {n} | {', '.join(str(x['seed']) for x in xs)} | "
                       f"{', '.join(_g(x.get('relative_error')) for x in xs)} | {reached} of "
                       f"{len(xs)} (<= {xs[0]['target']:g}) | {at} | {every} / {some} |")
    return "\n".join(out)


def plot_scaling(lines: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for row, sizes in _scaling(lines).items():
        ns = sorted(sizes)
        med = [statistics.median(max(float(x.get("relative_error", 1.0)), 1e-9)
                                 for x in sizes[n]) for n in ns]
        line, = ax.plot(ns, med, marker="o", label=f"{row} (median)")
        for n in ns:
            ys = [max(float(x.get("relative_error", 1.0)), 1e-9) for x in sizes[n]]
            ax.scatter([n] * len(ys), ys, color=line.get_color(), alpha=0.35, s=12)
        target = next(iter(sizes.values()))[0]["target"]
    ax.axhline(target, color="grey", linestyle=":", linewidth=1, label=f"target {target:g}")
    ax.set_xscale("log", base=2)
    ticks = sorted({n for sizes in _scaling(lines).values() for n in sizes})
    ax.set_xticks(ticks, [str(n) for n in ticks])
    ax.minorticks_off()
    ax.set_yscale("log")
    ax.set_xlabel("N (the quine's N x N matrix)")
    ax.set_ylabel("relative error (RMSE / std), best step")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None} if path.suffix == ".svg" else None)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/quines-table.jsonl"))
    parser.add_argument("--threads", type=int, default=1)
    sub = parser.add_subparsers(dest="command", required=True)
    table = sub.add_parser("table", help="the reproduction table's rows")
    table.add_argument("--rows", default=",".join(ROWS), help="comma-separated: "
                       + ", ".join(ROWS))
    table.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    recipe = sub.add_parser("recipe", help="one recipe (site edits) over seeds and sizes")
    recipe.add_argument("name")
    recipe.add_argument("--edits", nargs="*", default=[], metavar="SITE=VALUE")
    recipe.add_argument("--sizes", type=int, nargs="+", default=[64])
    recipe.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    recipe.add_argument("--steps", type=int, default=20000)
    scaling = sub.add_parser("scaling", help="recipes over N, stopped at the target")
    scaling.add_argument("--recipes", nargs="+", default=["writeup"])
    scaling.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32, 64])
    scaling.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    scaling.add_argument("--steps", type=int, default=20000)
    scaling.add_argument("--target", type=float, default=1e-6)
    scaling.add_argument("--plot", type=Path, default=None)
    report = sub.add_parser("report", help="the tables from --out alone")
    report.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_header(f"torch threads {args.threads}"))
    lines = read_results(args.out)
    if args.command == "table":
        rows = args.rows.split(",")
        unknown = sorted(set(rows) - set(ROWS))
        if unknown:
            parser.error(f"unknown rows: {', '.join(unknown)}")
        _run(args.out, [{"kind": "table", "row": row, "seed_name": ROWS[row].seed,
                         "edits": ROWS[row].edits, "size": ROWS[row].edits.get(
                             "size", 16 if ROWS[row].seed != "quine-rnn" else None),
                         "seed": seed, "steps": ROWS[row].steps}
                        for row in rows for seed in args.seeds])
    elif args.command == "recipe":
        edits = {}
        for item in args.edits:
            site, _, value = item.partition("=")
            edits[site] = _value(value)
        known = _recipes(lines).get(args.name)
        if known is not None and known != edits:
            parser.error(f"recipe {args.name!r} is in {args.out} as {known}; name this one "
                         "otherwise")
        _run(args.out, [{"kind": "recipe", "row": args.name, "seed_name": "quine-coords",
                         "edits": {**edits, "size": n}, "size": n, "seed": seed,
                         "steps": args.steps} for n in args.sizes for seed in args.seeds])
    elif args.command == "scaling":
        known = _recipes(lines)
        missing = [r for r in args.recipes if r not in known]
        if missing:
            parser.error(f"unknown recipes: {', '.join(missing)} (known: {', '.join(known)})")
        _run(args.out, [{"kind": "scaling", "row": r, "seed_name": "quine-coords",
                         "edits": {**known[r], "size": n}, "size": n, "seed": seed,
                         "steps": args.steps, "target": args.target}
                        for r in args.recipes for n in args.sizes for seed in args.seeds])
    lines = read_results(args.out)
    print(table_report(lines))
    print()
    print(recipe_report(lines))
    print()
    print(scaling_report(lines))
    plot = getattr(args, "plot", None)
    if plot is not None:
        plot_scaling(lines, plot)
        print(f"# plot: {plot}")


if __name__ == "__main__":
    main()
