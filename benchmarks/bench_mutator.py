"""Validated mutants per second: deepphoenix's splice path against a naive CST path.

Both paths draw the same edits from the same Refiner and produce the same text;
what differs is how a mutant is made and validated:

- deepphoenix: parse once; per mutant, splice literals into fixed text pieces at
  CST-derived spans, derive, validate on values, hash from a pre-split canonical dump.
- naive: per mutant, parse the text with libcst, replace the site literals with a
  CSTTransformer, generate code, re-parse it to validate, read the values back and check
  the grammar.

Both run on one core in this process. Usage::

    python benchmarks/bench_mutator.py [--seconds 3] [--file PATH] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import libcst as cst
from _common import machine_header

from deepphoenix.grammar import Grammar, load_grammar
from deepphoenix.mutator import (
    Edit,
    Program,
    collect_bindings,
    infer_grammar,
    parse_program,
    render_value,
)
from deepphoenix.mutator._literal import literal_of
from deepphoenix.proposers import Refiner
from deepphoenix.seeds import seed_source


def _real_file() -> Path:
    import transformers

    root = Path(transformers.__file__).parent / "models"
    preferred = root / "flava" / "configuration_flava.py"
    if preferred.exists():
        return preferred
    candidates = [p for p in root.glob("*/configuration_*.py")
                  if 300 <= len(p.read_text().splitlines()) <= 600]
    return max(candidates, key=lambda p: len(p.read_text()))


class _Replace(cst.CSTTransformer):
    """Replace the value of the k-th binding (in visit order) for each edited k."""

    def __init__(self, new_values: dict[int, str]) -> None:
        self.new_values = new_values
        self.index = -1

    def _value(self, node: cst.BaseExpression) -> cst.BaseExpression:
        self.index += 1
        text = self.new_values.get(self.index)
        return node if text is None else cst.parse_expression(text)

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:
        if len(updated.targets) == 1 and isinstance(updated.targets[0].target,
                                                   cst.Name | cst.Attribute):
            return updated.with_changes(value=self._value(updated.value))
        return updated

    def leave_AnnAssign(self, original: cst.AnnAssign, updated: cst.AnnAssign) -> cst.AnnAssign:
        if updated.value is not None and isinstance(updated.target, cst.Name | cst.Attribute):
            return updated.with_changes(value=self._value(updated.value))
        return updated


def _naive_setup(program: Program) -> tuple[dict[str, int], list[int]]:
    """Map each site to its ordinal among assignment bindings, as _Replace counts them."""
    bindings = [b for b in collect_bindings(program.module, program.text)
                if b.form.value in ("attribute", "name", "field")]
    ordinal = {b.start: i for i, b in enumerate(bindings)}
    site_index = {}
    for site in program.sites:
        if site.start not in ordinal:
            raise SystemExit(f"site {site.name} is not an assignment; the naive path skips it")
        site_index[site.name] = ordinal[site.start]
    return site_index, sorted(site_index.values())


def _naive_mutant(program: Program, site_index: dict[str, int], edits: tuple[Edit, ...],
                  grammar: Grammar) -> str:
    values = program.values
    values.update((e.site, e.value) for e in edits)
    values = grammar.derive(values)
    new_values = {}
    for site in program.sites:
        if values[site.name] != site.value:
            new_values[site_index[site.name]] = render_value(grammar.site(site.name),
                                                             values[site.name], site.literal)
    module = cst.parse_module(program.text)
    code = module.visit(_Replace(new_values)).code
    again = cst.parse_module(code)  # validate: the code parses
    # Read the values back from the re-parsed tree and check the grammar on them.
    read = _ReadBack(set(site_index.values()))
    again.visit(read)
    by_ordinal = {i: v for i, v in read.values.items()}
    checked = {name: by_ordinal[i] for name, i in site_index.items()}
    full: dict[str, Any] = program.values
    full.update(checked)
    grammar.check(full, program.present)
    return code


class _ReadBack(cst.CSTVisitor):
    def __init__(self, wanted: set[int]) -> None:
        self.wanted = wanted
        self.index = -1
        self.values: dict[int, object] = {}

    def _see(self, node: cst.BaseExpression) -> None:
        self.index += 1
        if self.index in self.wanted:
            literal = literal_of(node)
            self.values[self.index] = None if literal is None else literal[1]

    def visit_Assign(self, node: cst.Assign) -> None:
        if len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name | cst.Attribute):
            self._see(node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None and isinstance(node.target, cst.Name | cst.Attribute):
            self._see(node.value)


def _rate(fn: Callable[[], object], seconds: float) -> tuple[float, int]:
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        fn()
        count += 1
    return count / (time.perf_counter() - start), count


def bench(label: str, text: str, grammar: Grammar, seconds: float) -> dict[str, object]:
    program = parse_program(text, grammar)
    proposer = Refiner(max_edits=1)
    rng = random.Random(0)
    pool = [e for e in (proposer.draw_edits(program, rng) for _ in range(2000)) if e]
    site_index, _ = _naive_setup(program)

    # Same edits, same text from both paths (checked on a sample, outside the timing).
    for edits in pool[:50]:
        ours = program.apply(edits)
        assert ours.variant is not None
        assert _naive_mutant(program, site_index, edits, grammar) == ours.variant.source

    cursor = [0]

    def next_edits() -> tuple[Edit, ...]:
        cursor[0] = (cursor[0] + 1) % len(pool)
        return pool[cursor[0]]

    def ours_draw_and_apply() -> None:
        edits = proposer.draw_edits(program, rng)
        if edits:
            program.apply(edits)

    ours_rate, ours_n = _rate(lambda: program.apply(next_edits()), seconds)
    full_rate, _ = _rate(ours_draw_and_apply, seconds)
    naive_rate, naive_n = _rate(lambda: _naive_mutant(program, site_index, next_edits(),
                                                      grammar), seconds)
    parse_rate, _ = _rate(lambda: cst.parse_module(text), seconds)
    setup_start = time.perf_counter()
    for _ in range(5):
        parse_program(text, grammar)
    setup_ms = (time.perf_counter() - setup_start) / 5 * 1000
    return {
        "file": label, "lines": len(text.splitlines()), "sites": len(program.sites),
        "ours_per_s": ours_rate, "ours_with_draw_per_s": full_rate, "naive_per_s": naive_rate,
        "speedup": ours_rate / naive_rate, "libcst_parse_ms": 1000 / parse_rate,
        "naive_ms": 1000 / naive_rate, "ours_us": 1e6 / ours_rate,
        "parse_program_ms": setup_ms, "samples": {"ours": ours_n, "naive": naive_n},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--file", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    real = args.file or _real_file()
    real_text = real.read_text(encoding="utf-8")
    results = [
        bench("paper seed (t5 grammar)", seed_source("paper"), load_grammar("t5"), args.seconds),
        bench(f"{real.parent.name}/{real.name} (inferred)", real_text,
              infer_grammar(real_text, str(real)), args.seconds),
    ]
    print(machine_header("one core used"))
    print("| file | lines | sites | deepphoenix mutants/s | with random draw | naive mutants/s "
          "| speed-up | libcst parse | naive per mutant | parse_program once |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['file']} | {r['lines']} | {r['sites']} | {r['ours_per_s']:,.0f} | "
              f"{r['ours_with_draw_per_s']:,.0f} | {r['naive_per_s']:,.0f} | "
              f"{r['speedup']:.0f}x | {r['libcst_parse_ms']:.2f} ms | {r['naive_ms']:.2f} ms | "
              f"{r['parse_program_ms']:.1f} ms |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
