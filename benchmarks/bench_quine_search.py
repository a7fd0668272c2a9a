"""Searching neural quines: the recipe searched at a size the user fixes, against the
hand-made recipe; the recurrent weight quine searched; and a long ouroboros chain.

    python benchmarks/bench_quine_search.py search --sizes 16 64 --run-seeds 500 501 502 \\
        503 504 [--max-steps 2000]
    python benchmarks/bench_quine_search.py search --source quine-rnn --run-seeds 600 601 \\
        602 --max-steps 2000 --max-width 16
    python benchmarks/bench_quine_search.py ouroboros --generations 5
    python benchmarks/bench_quine_search.py report

`search` runs `deepphoenix run --preset quine-cpu` (TPE over the `quine` grammar, which
never proposes `size`) from the seed with `size = N` written in, one run per run seed,
each to the end, with one worker of one torch thread and a long --timeout (600 s) so that
the steps, not the machine's load, end training. Every candidate of a run is trained from
the run's one initialisation seed, so the seed program (the hand-made recipe) and the
best found compare like for like; the write-up's procedure (its code in effect: W <- f(W)
every other step, no gradient step, the best step kept) is measured at the same
initialisation and the seed's steps, in this process. `--max-steps` / `--max-width`
search a copy of the grammar whose `steps` / `width` values stop there (written to the
work folder and stored with each run): say so next to any figure they give.

Finished runs are appended to --out as JSON lines and skipped when the command is run
again; `report` prints the tables from the file alone. Run directories go to --work.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import append_result, machine_header, read_results, run_deepphoenix

from deepphoenix.engine._rundir import derive_seed
from deepphoenix.seeds import seed_source

WRITEUP = {"gradient_every": 0, "regenerate_every": 2}
RUN_ARGS = ["--workers", "1", "--threads", "1", "--timeout", "600", "--quiet"]


def restricted_grammar(folder: Path, max_steps: int | None, max_width: int | None) -> str:
    """The built-in `quine` grammar, or a copy whose `steps` / `width` values stop at the
    given caps (a file in `folder`)."""
    if max_steps is None and max_width is None:
        return "quine"
    text = (resources.files("deepphoenix.grammar") / "builtin" / "quine.toml").read_text(
        encoding="utf-8")
    for site, cap in (("steps", max_steps), ("width", max_width)):
        if cap is None:
            continue
        pattern = re.compile(rf"(\[sites\.{site}\][^\[]*?values = )\[([^\]]*)\]")
        match = pattern.search(text)
        assert match is not None, site
        kept = [v.strip() for v in match.group(2).split(",") if int(v) <= cap]
        text = text[:match.start(2)] + ", ".join(kept) + text[match.end(2):]
    name = f"quine-steps{max_steps or 'all'}-width{max_width or 'all'}"
    path = folder / f"{name}.toml"
    path.write_text(text.replace('name = "quine"', f'name = "{name}"'), encoding="utf-8")
    return str(path)


def source_text(source: str, size: int | None) -> str:
    text = seed_source(source)
    if size is not None:
        text, found = re.subn(r"^size = \d+", f"size = {size}", text, count=1, flags=re.M)
        if not found:
            raise SystemExit(f"{source} has no size = N line")
    return text


def writeup_at(text: str, seed: int) -> dict[str, Any]:
    """The write-up's procedure from the seed's text (its size and steps), at `seed`."""
    from bench_quines import measure

    size = int(re.search(r"^size = (\d+)", text, flags=re.M).group(1))  # type: ignore[union-attr]
    steps = int(re.search(r"^steps = (\d+)", text, flags=re.M).group(1))  # type: ignore[union-attr]
    found = measure("quine-coords", {**WRITEUP, "size": size}, steps, seed)
    return {k: found.get(k) for k in ("relative_error", "rmse", "best_step", "trivial")}


def run_search(source: str, size: int | None, run_seed: int, grammar: str, work: Path,
               extra: list[str]) -> dict[str, Any]:
    from deepphoenix.store import RunStore

    tag = f"{source}-{size}-{Path(grammar).stem}-{run_seed}"
    path = work / f"{tag}.py"
    text = source_text(source, size)
    path.write_text(text, encoding="utf-8")
    run_dir = work / tag
    command = [sys.executable, "-m", "deepphoenix", "run", "--preset", "quine-cpu",
               "--source", str(path), "--grammar", grammar, "--seed", str(run_seed),
               "--run-dir", str(run_dir), *RUN_ARGS, *extra]
    print(" ".join(command[1:]), flush=True)
    summary, wall = run_deepphoenix(command, run_dir)
    with RunStore.open(run_dir) as store:
        variants = [v for v in store.variants() if v.status != "pending"]
        best = store.variant(summary["best_hash"])
        seed_row = store.variant(summary["seed_hash"])
    assert best is not None and seed_row is not None
    rejected = [v for v in variants if v.status == "rejected"]
    line: dict[str, Any] = {
        "kind": "search", "source": source, "size": size, "run_seed": run_seed,
        "grammar": Path(grammar).stem, "init_seed": derive_seed(run_seed, "fewshot"),
        "args": extra, "evaluations": len(variants), "wall": round(wall, 1),
        "seed_score": summary["seed_score"], "best_score": summary["best_score"],
        "seed_values": seed_row.values, "best_values": best.values,
        "best_metrics": {k: v for k, v in best.metrics.items() if k != "reports"},
        "seed_metrics": {k: v for k, v in seed_row.metrics.items() if k != "reports"},
        "rejected": len(rejected), "rejected_reasons": sorted({
            v.reason.split(" (")[0][:80] for v in rejected}),
        "failed": sum(v.status == "failed" for v in variants),
        "stopped_by_time": sum("stopped" in v.metrics for v in variants),
        "scores": sorted(v.score for v in variants if v.score is not None),
    }
    if source == "quine-coords" and "--objective" not in extra:  # in self-replication's units
        line["writeup"] = writeup_at(text, line["init_seed"])
    return line


def run_ouroboros(generations: int, seed: int, work: Path, timeout: float) -> dict[str, Any]:
    from deepphoenix.quine import ouroboros
    from deepphoenix.store import RunStore

    run_dir = work / f"ouroboros-{seed}"
    began = time.monotonic()
    chain = ouroboros(run_dir, "quine-source", generations, seed=seed, timeout=timeout,
                      device="cpu", threads=1,
                      on_generation=lambda g: print(json.dumps(g.to_dict()), flush=True))
    changed = []
    with RunStore.open(run_dir) as store:
        attempts = {a.episode: a for a in store.attempts()}
        for g in chain:
            attempt = attempts.get(g.number)
            changed.append([] if attempt is None else [
                f"{e['site']}={e['value']}" for e in attempt.edits])
        metrics = {g.number: store.variant(g.hash).metrics for g in chain}  # type: ignore[union-attr]
    return {"kind": "ouroboros", "seed": seed, "generations": generations,
            "wall": round(time.monotonic() - began, 1),
            "chain": [{**g.to_dict(), "edits": changed[i],
                       "train_steps": metrics[g.number].get("train_steps"),
                       "train_seconds": metrics[g.number].get("train_seconds"),
                       "exact_prefix": metrics[g.number].get("exact_prefix"),
                       "length": metrics[g.number].get("length")}
                      for i, g in enumerate(chain)]}


# -- report ---------------------------------------------------------------------------------

def _g(x: Any) -> str:
    return "-" if x is None else f"{float(x):.2g}"


def _int(x: Any) -> str:
    return "-" if x is None else f"{int(x):,}"


def _recipe(values: dict[str, Any], seed_values: dict[str, Any]) -> str:
    moved = {k: v for k, v in values.items() if seed_values.get(k) != v}
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in moved.items()) or "(the seed)"


def report(lines: list[dict[str, Any]]) -> str:
    out = []
    groups: dict[tuple[str, Any, str], list[dict[str, Any]]] = {}
    for x in lines:
        if x["kind"] == "search":
            groups.setdefault((x["source"], x["size"], x["grammar"]), []).append(x)
    for (source, size, grammar), runs in groups.items():
        runs.sort(key=lambda x: x["run_seed"])
        wins = sum(x["best_score"] < x["seed_score"] for x in runs)
        out += [f"### {source}, N = {size}, grammar {grammar}: {len(runs)} run seeds", "",
                "| run seed | evaluations | hand-made recipe (seed) | write-up's procedure | "
                "best found | its RMSE, step kept | best recipe (sites changed) | "
                "rejected trivial | wall |", "|---|---|---|---|---|---|---|---|---|"]
        for x in runs:
            writeup = x.get("writeup") or {}
            metrics = x["best_metrics"]
            out.append(
                f"| {x['run_seed']} | {x['evaluations']} | {_g(x['seed_score'])} | "
                f"{_g(writeup.get('relative_error')) if writeup else '-'}"
                f"{' (trivial)' if writeup.get('trivial') else ''} | "
                f"**{_g(x['best_score'])}** | {_g(metrics.get('rmse'))}, "
                f"{_int(metrics.get('best_step'))} of {_int(metrics.get('train_steps'))} | "
                f"{_recipe(x['best_values'], x['seed_values'])} | {x['rejected']} | "
                f"{x['wall']:.0f} s |")
        better = [x["seed_score"] / x["best_score"] for x in runs if x["best_score"]]
        out += ["", f"Search beat the recipe on {wins} of {len(runs)} run seeds; median best "
                f"{_g(statistics.median(x['best_score'] for x in runs))} against the "
                f"recipe's {_g(statistics.median(x['seed_score'] for x in runs))}"
                + (f" (median ratio {statistics.median(better):.3g})" if better else "")
                + f"; evaluations stopped by the time budget: "
                f"{sum(x['stopped_by_time'] for x in runs)}.", ""]
    for x in lines:
        if x["kind"] != "ouroboros":
            continue
        out += [f"### ouroboros, seed {x['seed']}, {x['generations']} generations "
                f"({x['wall']:.0f} s)", "",
                "| generation | program | steps to 100% | fidelity | exact | print | edits | "
                "next |", "|---|---|---|---|---|---|---|---|"]
        for g in x["chain"]:
            out.append(f"| {g['number']} | {g['hash']} | {g.get('train_steps')} | "
                       f"{_g(g['fidelity'])} | {g['exact']} | {g['outcome'] or g['status']} | "
                       f"{', '.join(g['edits']) or '-'} | {g['child'] or '-'} |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/quines-search.jsonl"))
    parser.add_argument("--work", type=Path, default=None,
                        help="where run directories go [default: a new temporary folder]")
    sub = parser.add_subparsers(dest="command", required=True)
    search = sub.add_parser("search", help="quine-cpu runs at a fixed size")
    search.add_argument("--source", default="quine-coords")
    search.add_argument("--sizes", type=int, nargs="+", default=[16])
    search.add_argument("--run-seeds", type=int, nargs="+", default=[500, 501, 502, 503, 504])
    search.add_argument("--max-steps", type=int, default=None)
    search.add_argument("--max-width", type=int, default=None)
    search.add_argument("--run-args", nargs=argparse.REMAINDER, default=[],
                        help="more `deepphoenix run` options (e.g. --episodes 1)")
    chain = sub.add_parser("ouroboros", help="a chain of quine-source generations")
    chain.add_argument("--generations", type=int, default=5)
    chain.add_argument("--seed", type=int, default=0)
    chain.add_argument("--timeout", type=float, default=7200.0)
    sub.add_parser("report", help="the tables from --out alone")
    args = parser.parse_args()
    print(machine_header("one worker, one torch thread"), flush=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="quine-search-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.command == "search":
        grammar = restricted_grammar(work, args.max_steps, args.max_width)
        sizes = args.sizes if args.source != "quine-rnn" else [None]
        done = {(x["source"], x["size"], x["grammar"], x["run_seed"], tuple(x["args"]))
                for x in read_results(args.out) if x["kind"] == "search"}
        for size in sizes:
            for run_seed in args.run_seeds:
                key = (args.source, size, Path(grammar).stem, run_seed, tuple(args.run_args))
                if key in done:
                    continue
                line = run_search(args.source, size, run_seed, grammar, work, args.run_args)
                append_result(args.out, line)
                print(f"N={size} run seed {run_seed}: recipe {line['seed_score']:.3g}, best "
                      f"{line['best_score']:.3g} ({line['wall']:.0f} s)", flush=True)
    elif args.command == "ouroboros":
        done_seeds = {x["seed"] for x in read_results(args.out) if x["kind"] == "ouroboros"
                      and x["generations"] == args.generations}
        if args.seed not in done_seeds:
            append_result(args.out, run_ouroboros(args.generations, args.seed, work,
                                                  args.timeout))
    print(report(read_results(args.out)))


if __name__ == "__main__":
    main()
