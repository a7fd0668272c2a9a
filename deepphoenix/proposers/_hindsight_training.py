"""`HindsightTraining`: how ``learned`` (and ``t5-only``) train their T5 (a `T5Drawer`'s
training), using what the run has measured instead of training from scratch:

* **One model, warm-started.** The proposing T5 is the one the run's seed program defines
  (or ``--proposer-source``): trained on the refinement pairs in the first episode (from
  ``--proposer-init`` when given), then each later episode starts from the previous
  episode's weights.
* **Hindsight relabelling.** A later episode fine-tunes on the run's own improving pairs:
  any two scored variants where the second scored better give an input (the worse
  program) and a target (the better one), repeated by how much better it scored (1-4x),
  mixed with as many refinement pairs (replay, so it keeps the grammar). The stage is
  sized by that data, not a fixed epoch count: no improving pair, no training (the
  previous weights are reused, and that decision is stored).

Its state is the stored observations (replayed on resume) and the per-episode model
directories, so ``kill -9`` + ``--resume`` ends where an uninterrupted run ends.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from deepphoenix.errors import WorkerError
from deepphoenix.mutator import (
    Program,
    TargetFormat,
    diff_programs,
    format_edit_script,
    parse_program,
)
from deepphoenix.objectives import Direction
from deepphoenix.proposers._pool import record
from deepphoenix.proposers._protocol import Observation
from deepphoenix.proposers._records import ProposerData
from deepphoenix.proposers._t5 import MAX_TOKENS
from deepphoenix.proposers._t5_drawer import T5Drawer
from deepphoenix.proposers._tokenizer import load_tokenizer
from deepphoenix.proposers._view import view_target, view_text
from deepphoenix.status import VariantStatus
from deepphoenix.store_io import write_text_atomic

__all__ = ["MAX_HINDSIGHT", "MAX_TARGETS", "HindsightTraining", "hindsight_pairs"]

MAX_TARGETS = 8  # best variants used as hindsight targets
MAX_HINDSIGHT = 512  # hindsight rows per stage (with repeats)


def hindsight_pairs(observations: Sequence[Observation], sign: float = 1.0,
                    max_targets: int = MAX_TARGETS,
                    limit: int = MAX_HINDSIGHT) -> list[tuple[dict[str, Any], dict[str, Any],
                                                              int]]:
    """(worse values, better values, repeats) for the run's scored variants: each of the
    best `max_targets` variants is a target for every variant that scored worse, repeated
    1-4 times by the improvement relative to the spread of scores. `sign` is -1 for a
    maximized score. Largest improvements first, at most `limit` rows in all."""
    scored = [(sign * o.score, o) for o in observations
              if o.status == VariantStatus.SCORED and o.score is not None]
    if len(scored) < 2:
        return []
    scored.sort(key=lambda pair: pair[0])  # stable: ties keep the run's order
    spread = scored[-1][0] - scored[0][0]
    if spread <= 0:
        return []
    found = []
    for target_score, target in scored[:max_targets]:
        for score, worse in scored:
            if score > target_score:
                gain = (score - target_score) / spread
                found.append((gain, worse.values, target.values, 1 + min(3, int(4 * gain))))
    found.sort(key=lambda row: -row[0])
    rows, total = [], 0
    for _gain, worse_values, better_values, repeats in found:
        if total + repeats > limit:
            break
        rows.append((worse_values, better_values, repeats))
        total += repeats
    return rows


class HindsightTraining:
    """Warm-started training on the run's improving pairs (see the module's docstring).
    Told every result (`tell`), in the order the run recorded them."""

    def __init__(self, direction: Direction | str = Direction.MINIMIZE) -> None:
        self.sign = Direction.parse(direction).sign
        self.observed: list[Observation] = []

    def tell(self, observations: Sequence[Observation]) -> None:
        record(self.observed, observations)

    def begin_episode(self, drawer: T5Drawer, episode: int, program: Program, seed: int,
                      stored: dict[str, Any] | None) -> dict[str, Any] | None:
        if stored is not None and "reused" in stored:  # decided before an interruption
            drawer.load(drawer.folder(int(stored["reused"])))
            return stored
        settled, restored = drawer.restore(episode, stored)
        if settled:
            return restored
        ctx = drawer.ctx
        folder = drawer.folder(episode)
        previous = self.previous(drawer, episode)
        source = ctx.proposer_source or ctx.seed_source or program.text
        settings = ctx.training.with_seed(seed)
        tokens, hindsight = None, 0
        if previous is not None:
            rows = self.rows(drawer.data, program, seed)
            if not rows:  # nothing improving measured yet: the previous weights stand
                drawer.load(previous)
                # Stored, so that a resume (which has seen more of this episode's results
                # by then) keeps this decision instead of training.
                return {"reused": int(previous.parent.name), "losses": []}
            tokens = folder.parent / "hindsight.json"
            write_text_atomic(tokens, json.dumps(
                {"input_ids": [r[0] for r in rows], "labels": [r[1] for r in rows]},
                separators=(",", ":")))
            settings = replace(settings, samples=None)
            hindsight = len(rows)
        try:
            report = drawer.train(episode, source, settings, tokens=tokens,
                                  init_from=previous if previous is not None
                                  else ctx.proposer_init)
        except WorkerError as exc:
            drawer.fall_back(episode, str(exc))
            return {"failed": str(exc), "losses": []}
        meta_path = folder / "proposer.json"  # so a checkpoint's report says the same
        meta = json.loads(meta_path.read_text())
        write_text_atomic(meta_path, json.dumps({**meta, "rows": hindsight}, indent=2))
        # rows: hindsight and replayed pairs (0: refinement pairs)
        return {**report.to_dict(), "rows": hindsight}

    def previous(self, drawer: T5Drawer, episode: int) -> Path | None:
        """The folder of the latest earlier episode's model (None: none saved)."""
        for earlier in range(episode - 1, 0, -1):
            if (drawer.folder(earlier) / "proposer.json").exists():
                return drawer.folder(earlier)
        return None

    def rows(self, data: ProposerData, program: Program,
             seed: int) -> list[tuple[list[int], list[int]]]:
        """Tokenized hindsight pairs (with their repeats), then as many replayed refinement
        pairs, in a seeded order."""
        tokenizer = load_tokenizer(data.tokenizer_path)
        rows: list[tuple[list[int], list[int]]] = []
        for worse, better, repeats in hindsight_pairs(self.observed, self.sign):
            if data.view is not None:  # the worse variant's view; no source rendered
                target = view_target(program, worse, better, data.format)
                if target is None:
                    continue  # the two differ only where the model never writes
                before = view_text(program, worse)
            elif data.format is TargetFormat.SOURCE:
                before = program.render(worse)[0].source
                target = program.render(better)[0].source
            else:
                before = program.render(worse)[0].source
                worse_program = parse_program(before, program.grammar)
                better_program = parse_program(program.render(better)[0].source, program.grammar)
                movable = {spec.name for spec in worse_program.proposable}
                edits = [e for e in diff_programs(worse_program, better_program).edits
                         if e.site in movable]  # derived sites follow; never written
                if not edits:
                    continue  # the two differ only where no proposer writes
                target = format_edit_script(worse_program, edits)
            ids_in = tokenizer.encode(before).ids
            ids_out = tokenizer.encode(target).ids
            if len(ids_in) <= MAX_TOKENS and len(ids_out) <= MAX_TOKENS:
                rows.extend([(ids_in, ids_out)] * repeats)
        if not rows:
            return []
        tokens = json.loads(data.tokens_path.read_text())
        replay = list(zip(tokens["input_ids"], tokens["labels"], strict=True))
        rng = random.Random(seed)
        rows += rng.sample(replay, min(len(replay), max(len(rows), 32)))
        rng.shuffle(rows)
        return rows
