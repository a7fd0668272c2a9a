"""Literal-only search against structural+literal search on the gpt-cpu task.

Each row is a `deepphoenix run --preset gpt-cpu` (its own process, one after another) with
one proposer over one grammar, over several run seeds:

    literal      the `gpt` grammar's literal sites only (depth, heads, width, dropout,
                 activation; lr, batch size, weight decay, optimizer): the grammar as it
                 was before structural sites, written to a temporary TOML file
    structural   the built-in `gpt` grammar: the same literal sites and six structural
                 ones (norm, mlp, position, head, block, qk_norm)

Both arms have the same E x B x C candidate slots, objective, data and the same
`--max-params` cap, the seed's own parameter count (437,760), so that a gain is not
capacity creep: a candidate over it is rejected before it trains (it still uses its slot).
Reported per proposer: the median and range of the best held-out loss over the seeds, on
how many seeds structural+literal beat literal-only, the median parameter count of the
best and the median wall time; then which structural choices the structural bests hold.

    python benchmarks/bench_structure.py --seeds 200 201 202 203 204 \\
        --proposers random tpe learned --out benchmarks/structure.jsonl

Finished runs are appended to `--out` as JSON lines and skipped when the command is run
again, so an interrupted benchmark continues; `--report` prints the tables from the file
alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import append_result, machine_header, read_results, run_deepphoenix

import deepphoenix.grammar
from deepphoenix.grammar import read_grammar_file

PRESET = "gpt-cpu"
ARMS = ("literal", "structural")
PROPOSERS = ("random", "tpe", "learned")
STRUCTURAL_MARKER = "# ---- Structural sites"
GPT_TOML = Path(deepphoenix.grammar.__file__).parent / "builtin" / "gpt.toml"


def seed_parameters() -> int:
    """The `gpt` seed model's parameter count (tied weights once), the cap of every run."""
    import torch  # noqa: F401  (the seed imports it; fail here with a clear import error)

    from deepphoenix.seeds import seed_source

    namespace: dict[str, Any] = {"__name__": "_bench_structure_seed"}
    sys.modules["_bench_structure_seed"] = type(sys)("_bench_structure_seed")
    try:
        exec(compile(seed_source("gpt"), "gpt.py", "exec"), namespace)  # trusted built-in
    finally:
        sys.modules.pop("_bench_structure_seed", None)
    return sum(p.numel() for p in namespace["model"].parameters())


def structural_sites() -> list[str]:
    """The names of gpt.toml's structural sites (those with alternatives), in order."""
    sites = tomllib.loads(GPT_TOML.read_text(encoding="utf-8"))["sites"]
    return [name for name, table in sites.items() if "alternatives" in table]


def literal_grammar(folder: Path) -> Path:
    """The `gpt` grammar without its structural sites (and without the `when` that names
    one), as a TOML file in `folder`."""
    text = GPT_TOML.read_text(encoding="utf-8")
    head, marker, _ = text.partition(STRUCTURAL_MARKER)
    if not marker:
        raise SystemExit(f"gpt.toml has no {STRUCTURAL_MARKER!r} line to cut at")
    lines = [line for line in head.splitlines() if not line.startswith("when = ")]
    path = folder / "gpt-literal.toml"
    path.write_text("\n".join(lines).replace('name = "gpt"', 'name = "gpt-literal"') + "\n",
                    encoding="utf-8")
    every = set(tomllib.loads(text)["sites"])
    if {s.name for s in read_grammar_file(path).sites} != every - set(structural_sites()):
        raise SystemExit("the literal-only grammar does not hold exactly gpt's literal sites")
    return path


def run_once(arm: str, proposer: str, seed: int, grammar: str, cap: int,
             folder: Path) -> dict[str, Any]:
    run_dir = folder / f"{arm}-{proposer}-{seed}"
    command = [sys.executable, "-m", "deepphoenix", "run", "--preset", PRESET,
               "--proposer", proposer, "--seed", str(seed), "--grammar", grammar,
               "--max-params", str(cap), "--run-dir", str(run_dir), "--quiet"]
    summary, wall = run_deepphoenix(command, run_dir)
    order = "desc" if summary["direction"] == "maximize" else "asc"
    with sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True) as db:
        best_values = db.execute("select site_values from variants where status = 'scored' "
                                 f"order by score {order} limit 1").fetchone()[0]
        statuses = dict(db.execute("select status, count(*) from variants where scored_at "
                                   "is not null group by status").fetchall())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    return {"preset": PRESET, "arm": arm, "proposer": proposer, "seed": seed, "cap": cap,
            "commit": commit, "wall": round(wall, 2), "best": summary["best_score"],
            "seed_score": summary["seed_score"], "best_params": summary["best_params"],
            "best_values": json.loads(best_values), "evaluations": sum(statuses.values()),
            "rejected": statuses.get("rejected", 0), "failed": statuses.get("failed", 0),
            "load": round(os.getloadavg()[0], 2)}


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(results: list[dict[str, Any]], sites: list[str]) -> str:
    seeds = sorted({r["seed"] for r in results})
    lines = [f"#### {PRESET}: literal-only against structural+literal, run seeds "
             f"{', '.join(map(str, seeds))}, `--max-params {results[0]['cap']}`", "",
             "| proposer | grammar | runs | median best | range | structural better on "
             "| median params of best | median variants evaluated (rejected by the cap) "
             "| median wall (process) |", "|---|---|---|---|---|---|---|---|---|"]
    for proposer in PROPOSERS:
        by_arm = {arm: {r["seed"]: r for r in results
                        if r["proposer"] == proposer and r["arm"] == arm} for arm in ARMS}
        paired = sorted(set(by_arm["literal"]) & set(by_arm["structural"]))
        wins = sum(1 for s in paired
                   if by_arm["structural"][s]["best"] < by_arm["literal"][s]["best"])
        for arm in ARMS:
            mine = list(by_arm[arm].values())
            if not mine:
                continue
            bests = [r["best"] for r in mine]
            versus = f"{wins} of {len(paired)} seeds" if arm == "structural" else ""
            lines.append(
                f"| {proposer} | {arm} | {len(mine)} | {_fmt(statistics.median(bests))} | "
                f"{_fmt(min(bests))}–{_fmt(max(bests))} | {versus} | "
                f"{statistics.median(r['best_params'] or 0 for r in mine) / 1e3:.0f} k | "
                f"{statistics.median(r['evaluations'] for r in mine):.0f} "
                f"({statistics.median(r['rejected'] for r in mine):.0f}) | "
                f"{statistics.median(r['wall'] for r in mine):.0f} s |")
    lines += ["", "Per seed, best held-out loss (literal / structural):", "",
              "| proposer | " + " | ".join(map(str, seeds)) + " |",
              "|---|" + "---|" * len(seeds)]
    seed_scores = [next((r["seed_score"] for r in results if r["seed"] == seed), None)
                   for seed in seeds]
    lines.append("| (the seed itself) | " + " | ".join(_fmt(s) for s in seed_scores) + " |")
    for proposer in PROPOSERS:
        cells = []
        for seed in seeds:
            pair = [next((r["best"] for r in results if r["proposer"] == proposer
                          and r["arm"] == arm and r["seed"] == seed), None) for arm in ARMS]
            cells.append(" / ".join(_fmt(b) for b in pair))
        if any(c != "- / -" for c in cells):
            lines.append(f"| {proposer} | " + " | ".join(cells) + " |")
    # a run that found nothing better than the seed says nothing about structure
    structural = [r for r in results if r["arm"] == "structural" and r["best"] != r["seed_score"]]
    if structural:
        lines += ["", f"Structural choices of the bests of the {len(structural)} structural "
                  "runs that beat the seed (how many runs' best holds each):", "",
                  "| site | choices (count) |", "|---|---|"]
        for site in sites:
            counts = Counter(str(r["best_values"].get(site)) for r in structural)
            lines.append(f"| {site} | " + ", ".join(f"{c} ({n})" for c, n in
                                                      counts.most_common()) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[200, 201, 202, 203, 204])
    parser.add_argument("--proposers", nargs="+", choices=PROPOSERS, default=list(PROPOSERS))
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/structure.jsonl"))
    parser.add_argument("--runs", type=Path, default=None,
                        help="where the run directories go [default: a temporary folder]")
    parser.add_argument("--report", action="store_true", help="only print the tables")
    args = parser.parse_args()
    results = read_results(args.out)
    if not args.report:
        folder = args.runs or Path(tempfile.mkdtemp(prefix="bench-structure-"))
        folder.mkdir(parents=True, exist_ok=True)
        grammars = {"literal": str(literal_grammar(folder)), "structural": "gpt"}
        cap = seed_parameters()
        print(machine_header(f"runs one after another, cap {cap:,} parameters"), flush=True)
        done = {(r["arm"], r["proposer"], r["seed"]) for r in results}
        for proposer in args.proposers:
            for seed in args.seeds:
                for arm in args.arms:
                    if (arm, proposer, seed) in done:
                        continue
                    result = run_once(arm, proposer, seed, grammars[arm], cap, folder)
                    results.append(result)
                    append_result(args.out, result)
                    print(f"{proposer} {arm} seed {seed}: best {result['best']:.4f} "
                          f"({result['best_params'] / 1e3:.0f} k params), "
                          f"{result['evaluations']} evaluations ({result['rejected']} over "
                          f"the cap), {result['wall']:.0f} s, load {result['load']}",
                          flush=True)
    wanted = [r for r in results if r["seed"] in args.seeds and r["proposer"] in args.proposers]
    if wanted:
        print(report(wanted, structural_sites()))


if __name__ == "__main__":
    main()
