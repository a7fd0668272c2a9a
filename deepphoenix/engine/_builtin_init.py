"""The built-in pretrained proposer: what it is pretrained on, and where it is kept.

`deepphoenix proposer pretrain --builtin` trains on the refinement pairs of every built-in
program under its own grammar (`BUILTIN_PROGRAMS`: the seeds of the presets), in the
program view that ``learned`` reads, and on any earlier runs named with it. Without
``--out`` it writes the model for its format into the user's cache
(`builtin_init_dir`: ``$DEEPPHOENIX_CACHE`` or ``~/.cache/deepphoenix``, then
``pretrained/<format>``; its ``pretrain.json`` records the command, the programs and the
versions). No checkpoint ships with the package: it is built here, offline, by that
command, and ``run --proposer-init builtin`` starts a learned proposer from it. No nanoGPT
file, no ResNet and none of the `nanogpt`, `resnet` or `llama` grammars is among the
programs: a search of a real model file is a task the built-in model never saw.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepphoenix.engine._seeding import derive_seed
from deepphoenix.errors import ConfigError
from deepphoenix.grammar import load_grammar
from deepphoenix.mutator import Program, TargetFormat
from deepphoenix.proposers import RefinementPair, make_dataset
from deepphoenix.seeds import seed_source

__all__ = ["BUILTIN_INIT", "BUILTIN_PROGRAMS", "CACHE_ENV", "PER_PROGRAM", "BuiltinPairs",
           "builtin_init_dir", "builtin_pairs", "resolve_init", "shipped_init"]

BUILTIN_INIT = "builtin"  # `--proposer-init builtin`: the shipped model of the run's format

# Every built-in seed under the grammar its preset (or its family) searches it with.
BUILTIN_PROGRAMS: tuple[tuple[str, str], ...] = (
    ("tiny", "t5"), ("tiny-train", "t5-train"), ("paper", "t5"), ("gpt", "gpt"),
    ("quine-coords", "quine"), ("quine-onehot", "quine"), ("quine-rnn", "quine"),
    ("quine-source", "quine"),
)
PER_PROGRAM = 512  # refinement pairs of each built-in program

CACHE_ENV = "DEEPPHOENIX_CACHE"  # where built models are kept (default ~/.cache/deepphoenix)


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


def builtin_init_dir(fmt: TargetFormat | str) -> Path:
    """Where `proposer pretrain --builtin` keeps the model that writes `fmt`."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "deepphoenix"
    return Path(root) / "pretrained" / TargetFormat(fmt).value


def shipped_init(fmt: TargetFormat | str) -> Path:
    """The built-in pretrained proposer that writes `fmt`; `ConfigError` (naming the
    command that builds it) when it has not been built on this machine."""
    folder = builtin_init_dir(fmt)
    if not (folder / "proposer.json").is_file():
        raise ConfigError(f"no built-in pretrained proposer for --format "
                          f"{TargetFormat(fmt).value} in {folder.parent}; build it once with "
                          f"`deepphoenix proposer pretrain --builtin --format "
                          f"{TargetFormat(fmt).value}` (offline, minutes on two cores)")
    return folder


def resolve_init(spec: str, fmt: TargetFormat | str) -> Path:
    """The model folder `--proposer-init SPEC` names: `BUILTIN_INIT` is the shipped model
    of the run's format, anything else a path."""
    return shipped_init(fmt) if spec == BUILTIN_INIT else Path(spec)
