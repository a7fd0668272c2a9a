"""The pretrained proposer that ships: what it is pretrained on, and where it lives.

`deepphoenix proposer pretrain --builtin` trains on the refinement pairs of every built-in
program under its own grammar (`BUILTIN_PROGRAMS`: the seeds of the presets), in the
program view that ``learned`` reads, and on any earlier runs named with it. The result for
each target format ships as package data in ``deepphoenix/pretrained/<format>/``, built by
``deepphoenix proposer pretrain --builtin --format F --out deepphoenix/pretrained/F`` (its
``pretrain.json`` records that command, the programs, the pairs and the versions); ``run
--proposer-init builtin`` starts a learned proposer from it. No nanoGPT file, no ResNet
and none of the `nanogpt`, `resnet` or `llama` grammars is among the programs: a search of
a real model file is a task the shipped proposer never saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepphoenix.engine._seeding import derive_seed
from deepphoenix.errors import ConfigError
from deepphoenix.grammar import load_grammar
from deepphoenix.mutator import Program, TargetFormat
from deepphoenix.proposers import RefinementPair, make_dataset
from deepphoenix.seeds import seed_source

__all__ = ["BUILTIN_INIT", "BUILTIN_PROGRAMS", "PER_PROGRAM", "BuiltinPairs", "builtin_pairs",
           "resolve_init", "shipped_init"]

BUILTIN_INIT = "builtin"  # `--proposer-init builtin`: the shipped model of the run's format

# Every built-in seed under the grammar its preset (or its family) searches it with.
BUILTIN_PROGRAMS: tuple[tuple[str, str], ...] = (
    ("tiny", "t5"), ("tiny-train", "t5-train"), ("paper", "t5"), ("gpt", "gpt"),
    ("quine-coords", "quine"), ("quine-onehot", "quine"), ("quine-rnn", "quine"),
    ("quine-source", "quine"),
)
PER_PROGRAM = 512  # refinement pairs of each built-in program

_SHIPPED = Path(__file__).resolve().parent.parent / "pretrained"


@dataclass(frozen=True, slots=True)
class BuiltinPairs:
    """What one built-in program gave to the pretraining."""

    seed: str
    grammar: str
    pairs: int
    sites: int

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "grammar": self.grammar, "pairs": self.pairs,
                "sites": self.sites}


def builtin_pairs(fmt: TargetFormat | str, seed: int = 0, per_program: int = PER_PROGRAM,
                  ) -> tuple[list[RefinementPair], list[BuiltinPairs]]:
    """The refinement pairs of every built-in program, in the program view and `fmt`,
    `per_program` of each, seeded by `seed`; and what each program gave."""
    pairs: list[RefinementPair] = []
    found: list[BuiltinPairs] = []
    for index, (name, grammar) in enumerate(BUILTIN_PROGRAMS):
        program = Program(seed_source(name), load_grammar(grammar))
        made = make_dataset(program, per_program, derive_seed(seed, "builtin", index), fmt,
                            view=True)
        pairs.extend(made)
        found.append(BuiltinPairs(name, grammar, len(made), len(program.proposable)))
    return pairs, found


def shipped_init(fmt: TargetFormat | str) -> Path:
    """The shipped pretrained proposer that writes `fmt`; `ConfigError` when none ships."""
    fmt = TargetFormat(fmt)
    folder = _SHIPPED / fmt.value
    if not (folder / "proposer.json").is_file():
        shipped = sorted(p.parent.name for p in _SHIPPED.glob("*/proposer.json"))
        other = f"pass --format {' or '.join(shipped)}, or " if shipped else "pass "
        raise ConfigError(f"no pretrained proposer ships for --format {fmt.value}; {other}"
                          "--proposer-init with a model `deepphoenix proposer pretrain` wrote")
    return folder


def resolve_init(spec: str, fmt: TargetFormat | str) -> Path:
    """The model folder `--proposer-init SPEC` names: `BUILTIN_INIT` is the shipped model
    of the run's format, anything else a path."""
    return shipped_init(fmt) if spec == BUILTIN_INIT else Path(spec)
