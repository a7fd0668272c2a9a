"""The shared vocabulary against a per-run tokenizer: the shipped file's size, its build
time, and the tokens a program view takes under each.

Usage::

    python benchmarks/bench_vocab.py [--sizes 1024,2048,4096] [--pairs 4096]
        [--nanogpt PATH/model.py]

For each built-in seed (with its grammar), the project's nanoGPT-style file
(tests/grammar/files/nanogpt_model.py, nanogpt grammar) and, with `--nanogpt`, a model.py
you fetched yourself: the longest text of the program's view pairs (a run's first
`--pairs` pairs, format source, both inputs and targets) under

* *own run*: the tokenizer a run trained on those pairs (vocabulary 1,024, digits), the
  old default;
* *foreign run*: the tokenizer a run of the tiny seed (t5 grammar) trained, reading this
  program (what a model pretrained on other programs met);
* *shared N*: the shared vocabulary of N tokens (`proposers._vocab`).

The paper seed's whole source (what the paper's `t5` proposer reads) is measured the
same way.

`--train N`: the cost of the larger vocabulary in the learned proposer's training stage.
The tiny seed's T5 trains one epoch on the first N view pairs of the gpt program (batch
32), read with its own run's BPE (1,024) and with the shipped vocabulary, in a sandbox
worker; printed: parameters, steps, seconds, final loss.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine_header

from deepphoenix.grammar import load_grammar
from deepphoenix.mutator import Program, parse_program
from deepphoenix.proposers import T5Sampler, TrainSettings, make_dataset, prepare_data
from deepphoenix.proposers._tokenizer import train_tokenizer
from deepphoenix.proposers._vocab import (
    SEEDED_GRAMMARS,
    build_vocabulary,
    shared_tokenizer_path,
)
from deepphoenix.sandbox import Worker, WorkerSettings
from deepphoenix.seeds import seed_source

_PROJECT_FILE = Path(__file__).parents[1] / "tests" / "grammar" / "files" / "nanogpt_model.py"


def _texts(program: Program, pairs: int, view: bool) -> list[str]:
    return [t for p in make_dataset(program, pairs, 0, "source", view=view)
            for t in (p.input, p.target)]


def _longest(tokenizer: Any, texts: list[str]) -> int:
    return max(len(e.ids) for e in tokenizer.encode_batch(texts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1024,2048,4096")
    parser.add_argument("--pairs", type=int, default=4096)
    parser.add_argument("--nanogpt", type=Path, default=None)
    parser.add_argument("--train", type=int, default=0, metavar="N")
    args = parser.parse_args()
    print(machine_header())
    if args.train:
        _train(args.train)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    shared = {}
    for size in sizes:
        began = time.monotonic()
        vocabulary = build_vocabulary(size)
        seconds = time.monotonic() - began
        shared[size] = vocabulary.tokenizer
        print(f"shared {size}: built in {seconds:.1f} s, {vocabulary.record['tokenizer_bytes']:,}"
              f" bytes, corpus {len(vocabulary.record['stdlib'])} stdlib files + "
              f"{vocabulary.record['views']} view texts")
    programs = [(f"{seed} ({grammar})", parse_program(seed_source(seed), load_grammar(grammar)))
                for seed, grammar in SEEDED_GRAMMARS]
    programs.append(("nanogpt_model.py (nanogpt)",
                     parse_program(_PROJECT_FILE.read_text(), load_grammar("nanogpt"))))
    if args.nanogpt is not None:
        programs.append(("nanoGPT model.py (nanogpt)",
                         parse_program(args.nanogpt.read_text(), load_grammar("nanogpt"))))
    foreign = train_tokenizer(_texts(programs[1][1], args.pairs, True), 1024)
    header = ["program", "view bytes", "own run", "foreign run",
              *[f"shared {s}" for s in sizes]]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, program in programs:
        texts = _texts(program, args.pairs, True)
        own = train_tokenizer(texts, 1024)
        row = [name, max(len(t.encode()) for t in texts), _longest(own, texts),
               _longest(foreign, texts), *[_longest(shared[s], texts) for s in sizes]]
        print("| " + " | ".join(str(x) for x in row) + " |")
    paper = programs[0][1]
    texts = _texts(paper, args.pairs, False)
    own = train_tokenizer(texts, 1024)
    row = ["paper whole source (t5)", max(len(t.encode()) for t in texts),
           _longest(own, texts), "", *[_longest(shared[s], texts) for s in sizes]]
    print("| " + " | ".join(str(x) for x in row) + " |")


def _train(pairs: int) -> None:
    program = parse_program(seed_source("gpt"), load_grammar("gpt"))
    dataset = make_dataset(program, pairs, 0, "source", view=True)
    print("| tokenizer | vocabulary | params | steps | seconds | final loss |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder, Worker(
            WorkerSettings(threads=os.cpu_count() or 1), name="bench") as worker:
        Path(folder).chmod(0o755)
        for label, tokenizer in (("own run", None), ("shared", shared_tokenizer_path())):
            data = prepare_data(dataset, "source", Path(folder) / label, 1024,
                                tokenizer_from=tokenizer, view=1)
            _, report = T5Sampler.train(seed_source("tiny"), data,
                                        TrainSettings(epochs=1, batch_size=32, seed=0), worker)
            print(f"| {label} | {data.vocab_size} | {report.params:,} | {report.steps} | "
                  f"{report.seconds:.1f} | {report.final_loss:.3f} |")


if __name__ == "__main__":
    main()
