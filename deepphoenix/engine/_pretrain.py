"""Transfer across runs: the pairs a proposer is pretrained on, read from earlier runs.

Each run gives its hindsight pairs (`hindsight_pairs`: every variant that scored worse
than one of the run's best, paired with it, repeated by the gain), the variants read from
the run's own database, and as many refinement pairs of its seed program (replay, so that
the model keeps the form of a refinement). Programs and tasks may differ between the runs:
the pairs are text in the program view (`proposers._view`: what ``learned`` reads,
whatever the length of the file; a run over several files gives views of all its
files' sites), the targets in the format the pretrained proposer writes. `deepphoenix
proposer pretrain` trains on them; `deepphoenix run --proposer-init` starts from the
result.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

from deepphoenix.engine._rundir import derive_seed
from deepphoenix.errors import ConfigError, RunDirError
from deepphoenix.grammar import Grammar
from deepphoenix.lineage import run_grammar
from deepphoenix.mutator import Edit, Program, TargetFormat, parse_candidate
from deepphoenix.proposers import (
    Observation,
    RefinementPair,
    hindsight_pairs,
    make_dataset,
    view_sites,
    view_target,
    view_text,
)
from deepphoenix.status import VariantStatus
from deepphoenix.store import RunStore

__all__ = ["RunPairs", "pretraining_pairs"]

MIN_REPLAY = 64  # refinement pairs replayed per run, at least


@dataclass(frozen=True, slots=True)
class RunPairs:
    """What one earlier run gave: its folder, hindsight and replayed pairs."""

    run_dir: Path
    hindsight: int  # rows, with repeats
    replay: int
    scored: int  # scored variants the hindsight pairs were drawn from

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "hindsight": self.hindsight,
                "replay": self.replay, "scored": self.scored}


def _key(values: dict[str, Any]) -> str:
    return json.dumps(values, sort_keys=True, default=repr)


def pretraining_pairs(run_dirs: Sequence[Path], fmt: TargetFormat | str,
                      seed: int = 0) -> tuple[list[RefinementPair], list[RunPairs]]:
    """The pretraining pairs of the runs in `run_dirs` (read-only), in `fmt`, and what
    each run gave. `RunDirError` for a folder that is not a run; `ConfigError` when no run
    measured an improvement."""
    fmt = TargetFormat(fmt)
    pairs: list[RefinementPair] = []
    found: list[RunPairs] = []
    for run_dir in run_dirs:
        with RunStore.open(Path(run_dir)) as store:
            grammar = run_grammar(store)
            seed_text = store.get_meta("seed_text")
            if grammar is None or not isinstance(seed_text, str):
                raise RunDirError(f"{run_dir}: its grammar or seed program cannot be read "
                                  "back here; pass runs this deepphoenix can resume")
            sign = store.direction.sign
            variants = [v for v in store.variants() if v.status == VariantStatus.SCORED
                        and v.score is not None]
        sources = {_key(v.values): v.source for v in variants}
        observed = [Observation("", v.hash, v.values, VariantStatus.SCORED, v.score)
                    for v in variants]
        parsed: dict[str, Program] = {}  # each variant parsed once, not once per pair
        program_of = partial(_parse_once, parsed, grammar)
        hindsight = 0
        for worse, better, repeats in hindsight_pairs(observed, sign):
            # The worse variant's own program: its view, and the literal style of the target.
            worse_program = program_of(sources[_key(worse)])
            better_program = program_of(sources[_key(better)])
            target = view_target(worse_program, worse_program.values, better_program.values,
                                 fmt)
            if target is None:
                continue  # the two differ only where the model never writes
            edits = tuple(  # at the sites the view shows: derived sites follow
                Edit(spec.name, after) for spec in view_sites(worse_program)
                if (after := better_program.values.get(spec.name)) is not None
                and (after != (before := worse_program.values.get(spec.name))
                     or type(after) is not type(before)))
            pairs.extend([RefinementPair(view_text(worse_program), target, edits)] * repeats)
            hindsight += repeats
        replay = max(hindsight, MIN_REPLAY)
        program = _parse(seed_text, grammar, "seed")
        pairs.extend(make_dataset(program, replay, derive_seed(seed, "pretrain", len(found)),
                                  fmt, view=True))
        found.append(RunPairs(Path(run_dir), hindsight, replay, len(variants)))
    if not any(run.hindsight for run in found):
        raise ConfigError("none of the runs scored a variant better than another: no "
                          "improving pair to pretrain on; pass finished runs")
    return pairs, found


def _parse_once(parsed: dict[str, Program], grammar: Grammar, source: str) -> Program:
    if source not in parsed:
        parsed[source] = _parse(source, grammar)
    return parsed[source]


def _parse(text: str, grammar: Grammar, path: str | None = None) -> Program:
    # A run over several files stored bundles; a `Bundle` answers what the view asks.
    return cast(Program, parse_candidate(text, grammar, path))
