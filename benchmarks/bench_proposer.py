"""The learned proposer: validity, diversity, speed and the distribution of changed sites,
per target format, with and without constrained decoding, after a bounded training stage
on CPU; and the tokenizer comparison behind the default pre-tokenizer.

Usage::

    python benchmarks/bench_proposer.py [--seed-name tiny] [--minutes 4.5] [--batches 10]
        [--formats source,edits] [--tokenizers] [--json OUT]
    python benchmarks/bench_proposer.py --reload-calls 5

`--reload-calls N` times N sampling calls of a saved model loaded in a fresh worker, with
the workers' default environment and with transformers' progress bars turned back on
(whose monitor thread retires the worker after each job: the cost the default avoids).

*Valid* means grounded and satisfying every check (outcome ok or duplicate); *distinct*
counts different variants among a batch of 8. The training distribution changes exactly
one of the four proposable sites, each with probability 1/4.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _common import machine_header

from deepphoenix.evaluator import EvalSettings, Evaluator
from deepphoenix.executor import ExecutorSettings, LocalExecutor
from deepphoenix.grammar import load_grammar
from deepphoenix.mutator import parse_program
from deepphoenix.outcome import Outcome
from deepphoenix.proposers import make_dataset
from deepphoenix.proposers._t5 import SampleSettings, T5Sampler, TrainSettings, prepare_data
from deepphoenix.sandbox import Worker, WorkerSettings
from deepphoenix.seeds import seed_source

CANDIDATES = 8
DEFAULT = "constrained + resampling (default)"


def sample_stats(proposer: T5Sampler, parent: Any, batches: int) -> dict[str, Any]:
    outcomes: Counter[str] = Counter()
    sites: Counter[str] = Counter()
    changed: Counter[int] = Counter()
    distinct = []
    seconds = 0.0
    draws = 0
    proposable = {s.name for s in parent.proposable}
    for seed in range(batches):
        began = time.perf_counter()
        proposals = proposer.propose(parent, CANDIDATES, seed=1000 + seed)
        seconds += time.perf_counter() - began
        draws += proposer.last_draws
        hashes = set()
        for p in proposals:
            outcomes[p.mutation.outcome.value] += 1
            if p.mutation.outcome in (Outcome.OK, Outcome.DUPLICATE):
                assert p.mutation.variant is not None
                hashes.add(p.mutation.variant.hash)
                if p.mutation.outcome is Outcome.OK:
                    moved = [e.site for e in p.mutation.variant.changes if e.site in proposable]
                    changed[min(len(moved), 3)] += 1
                    sites.update(moved)
        distinct.append(len(hashes))
    total = sum(outcomes.values())
    ok = sum(changed.values())
    return {
        "candidates": total,
        "valid": (outcomes["ok"] + outcomes["duplicate"]) / total,
        "valid_distinct": outcomes["ok"] / total,
        "outcomes": dict(outcomes),
        "distinct_per_batch": sum(distinct) / len(distinct),
        "min_distinct": min(distinct),
        "candidates_per_s": total / seconds,
        "draws_per_batch": draws / batches,
        "single_site": changed[1] / ok if ok else 0.0,
        "changed_sites": {k: v / ok for k, v in sorted(changed.items())} if ok else {},
        "site_share": {k: round(v / sum(sites.values()), 3) for k, v in sites.most_common()},
    }


def bench_format(seed_name: str, fmt: str, minutes: float, batches: int, pairs: int,
                 folder: Path) -> dict[str, Any]:
    grammar = load_grammar("t5")
    parent = parse_program(seed_source(seed_name), grammar)
    data = prepare_data(make_dataset(parent, pairs, seed=0, fmt=fmt), fmt, folder / fmt, 1024)
    with Worker(WorkerSettings(threads=os.cpu_count() or 1), name="bench") as worker:
        settings = TrainSettings(epochs=1000, batch_size=32, lr=1e-3, seed=0,
                                 max_seconds=minutes * 60)
        proposer, report = T5Sampler.train(parent.text, data, settings, worker)
        results: dict[str, Any] = {
            "seed": seed_name, "format": fmt, "params": report.params,
            "train_seconds": report.seconds, "train_steps": report.steps,
            "final_loss": sum(report.losses[-20:]) / min(20, len(report.losses)),
            "mean_tokens": data.mean_input_tokens,
        }
        variants = {
            DEFAULT: SampleSettings(constrained=True, rounds=4),
            "constrained, 1 draw": SampleSettings(constrained=True, rounds=1),
            "unconstrained (the paper)": SampleSettings(constrained=False, rounds=1),
        }
        for key, sampling in variants.items():
            proposer.sampling = sampling
            results[key] = sample_stats(proposer, parent, batches)
    return results


def bench_reload(calls: int, folder: Path) -> list[dict[str, Any]]:
    """Seconds per sampling call of a loaded proposer, with progress bars off (the
    default) and on."""
    parent = parse_program(seed_source("tiny"), load_grammar("t5"))
    data = prepare_data(make_dataset(parent, 256, seed=0), "source", folder / "reload", 400)
    with Worker(WorkerSettings(threads=os.cpu_count() or 1), name="trainer") as trainer:
        T5Sampler.train(parent.text, data, TrainSettings(epochs=1, seed=0), trainer,
                         out=folder / "reload" / "model")
    rows = []
    for label, env in (("progress bars off (default)", ()),
                       ("progress bars on", (("HF_HUB_DISABLE_PROGRESS_BARS", "0"),))):
        settings = WorkerSettings(threads=os.cpu_count() or 1, extra_env=env)
        with Worker(settings, name="sampler") as worker:
            proposer = T5Sampler.load(folder / "reload" / "model", worker)
            seconds = []
            for call in range(calls):
                began = time.perf_counter()
                proposer.sample_texts(parent, 8, seed=call)
                seconds.append(time.perf_counter() - began)
        rows.append({"environment": label, "seconds": seconds})
    return rows


def bench_tokenizers(folder: Path) -> list[dict[str, Any]]:
    """Tokens per source and the tiny seed's few-shot epoch (1024 pairs) per pre-tokenizer."""
    grammar = load_grammar("t5")
    parent = parse_program(seed_source("tiny"), grammar)
    pairs = make_dataset(parent, 1024, seed=0)
    rows = []
    settings = ExecutorSettings(worker=WorkerSettings(threads=os.cpu_count() or 1,
                                                      device="cpu"))
    with LocalExecutor(settings) as pool:
        for kind in ("digits", "none", "gpt2"):
            data = prepare_data(pairs, "source", folder / f"tok-{kind}", 1024, kind)
            evaluator = Evaluator(pool, EvalSettings(rows=data.tokens_path,
                                                     vocab_size=data.vocab_size, samples=1024,
                                                     batch_size=16))
            list(evaluator.evaluate([("warm", parent.text)]))
            (result,) = list(evaluator.evaluate([(kind, parent.text)]))
            rows.append({"pre_tokenizer": kind, "tokens_per_source": data.mean_input_tokens,
                         "epoch_seconds": result.metrics["seconds"],
                         "mean_loss": result.score})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-name", default="tiny")
    parser.add_argument("--minutes", type=float, default=4.5)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=4096)
    parser.add_argument("--formats", default="source,edits")
    parser.add_argument("--tokenizers", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--reload-calls", type=int, default=0,
                        help="only time sampling calls of a loaded model (see above)")
    args = parser.parse_args()
    print(machine_header())
    out: dict[str, Any] = {"formats": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.reload_calls:
            print("| worker environment | seconds per sampling call, in order |")
            print("|---|---|")
            for r in bench_reload(args.reload_calls, folder):
                print(f"| {r['environment']} | "
                      f"{' / '.join(f'{x:.2f}' for x in r['seconds'])} |")
            return
        if args.tokenizers:
            out["tokenizers"] = bench_tokenizers(folder)
            print("| pre-tokenizer | tokens/source | few-shot epoch (1024 pairs) "
                  "| mean loss over the epoch |")
            print("|---|---|---|---|")
            for r in out["tokenizers"]:
                print(f"| {r['pre_tokenizer']} | {r['tokens_per_source']:.1f} | "
                      f"{r['epoch_seconds']:.2f} s | {r['mean_loss']:.3f} |")
        for fmt in args.formats.split(","):
            result = bench_format(args.seed_name, fmt, args.minutes, args.batches, args.pairs,
                                  folder)
            out["formats"].append(result)
            print(f"\n## {result['seed']} seed, format {fmt}: {result['params'] / 1e6:.2f} M "
                  f"params, {result['train_steps']} steps in {result['train_seconds']:.0f} s, "
                  f"loss (last 20 steps) {result['final_loss']:.3f}")
            print("| decoding | valid | valid & distinct | distinct / 8 (min) | samples drawn "
                  "| candidates/s | sites changed 1 / 2 / 3+ | changed-site share | outcomes |")
            print("|---|---|---|---|---|---|---|---|---|")
            for key in (DEFAULT, "constrained, 1 draw", "unconstrained (the paper)"):
                r = result[key]
                split = " / ".join(f"{r['changed_sites'].get(k, 0.0):.0%}" for k in (1, 2, 3))
                print(f"| {key} | {r['valid']:.0%} | {r['valid_distinct']:.0%} | "
                      f"{r['distinct_per_batch']:.1f} ({r['min_distinct']}) | "
                      f"{r['draws_per_batch']:.1f} | {r['candidates_per_s']:.1f} | "
                      f"{split} | {r['site_share']} | {r['outcomes']} |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
