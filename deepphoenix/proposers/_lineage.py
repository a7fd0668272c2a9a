"""``learned``: a T5 proposer that learns from its own run.

The paper's proposer (``t5``) trains, every episode and from scratch, the current best
program's own model on the grammar's random refinements: it learns the grammar, never
which edits paid off, and its training stage grows with the model that loss-based
selection drifts to (26 s a stage on the cpu preset once the best is a 10.8 M-parameter
model, against 3 s for the seed's). This proposer uses what the run has measured:

* **One model, warm-started.** The proposing T5 is the one the run's seed program defines
  (or ``--proposer-source``): trained on the refinement pairs in the first episode, then
  each later episode starts from the previous episode's weights.
* **Hindsight relabelling.** A later episode fine-tunes on the run's own improving pairs:
  any two scored variants where the second scored better give an input (the worse
  program) and a target (the better one), repeated by how much better it scored (1-4x),
  mixed with as many refinement pairs (replay, so it keeps the grammar). The stage is
  sized by that data, not a fixed epoch count: no improving pair, no training (the
  previous weights are reused).
* **Sample widely, then rank, in one pool with the GP's and the grammar's own picks.**
  Each batch samples ``max(8 x C, 32)`` constrained candidates in one call; to them are
  added ``C`` suggestions of Optuna's GP sampler (told every result, as ``gp`` is) and
  ``C`` draws of the grammar's refinements, and the evaluation budget goes to the ``C``
  of the pool that a Gaussian-process surrogate fitted on the run's scored variants ranks
  best by expected improvement (kriging believer between picks; before three are scored,
  the T5's samples first). Its floor is then the GP's, its ceiling what the T5 adds. Each
  candidate records which drawer made it (``t5``, ``gp``, ``draw``). Failed variants, and
  those rejected over ``--max-params``, count as the worst score seen.

Its state is the stored observations (replayed on resume) and the per-episode model
directories, so ``kill -9`` + ``--resume`` ends where an uninterrupted run ends.
"""

from __future__ import annotations

import json
import random
from collections.abc import Collection, Mapping, Sequence
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
from deepphoenix.proposers._builtin import PaperT5Proposer
from deepphoenix.proposers._distinct import round_seed
from deepphoenix.proposers._gp import GPProposer
from deepphoenix.proposers._pool import gather, rank, record, width
from deepphoenix.proposers._protocol import Observation, ProposerContext, register_proposer
from deepphoenix.proposers._random import RandomProposer
from deepphoenix.proposers._records import Proposal
from deepphoenix.proposers._t5 import MAX_TOKENS, T5Sampler
from deepphoenix.proposers._tokenizer import load_tokenizer
from deepphoenix.proposers._view import view_target, view_text
from deepphoenix.status import VariantStatus
from deepphoenix.store_io import write_text_atomic

__all__ = ["HindsightProposer", "hindsight_pairs"]

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


class HindsightProposer(PaperT5Proposer):
    """The learned proposer of this project (see the module's docstring); the paper's is
    ``t5`` (`PaperT5Proposer`, whose fallback, restore and sampling seams this reuses).
    Falls back to the grammar's random refinements, named ``random-fallback`` in the
    lineage, when its model cannot train or sample."""

    NAME = "learned"
    name = NAME
    accepts_init = True  # `--proposer-init`: the first stage starts from a pretrained model
    reads_view = True  # its model reads the program view (`proposers._view`), not the file

    def __init__(self, ctx: ProposerContext) -> None:
        super().__init__(ctx)
        self.sign = ctx.direction.sign
        self.observed: list[Observation] = []
        self.running: list[dict[str, Any]] = []  # values being evaluated (async runs)
        # The pool's other drawers: the GP sampler (told what this proposer is told) and
        # the grammar's refinements.
        self.gp = GPProposer(ctx)
        self.draws = RandomProposer(max_edits=1)

    # -- training ------------------------------------------------------------------------
    def _previous(self, episode: int) -> Path | None:
        for earlier in range(episode - 1, 0, -1):
            if (self._folder(earlier) / "proposer.json").exists():
                return self._folder(earlier)
        return None

    def begin_episode(self, episode: int, program: Program, seed: int,
                      stored: dict[str, Any] | None) -> dict[str, Any] | None:
        if stored is not None and "reused" in stored:  # decided before an interruption
            self._load(self._folder(int(stored["reused"])))
            return stored
        settled, restored = self._restore(episode, stored)
        if settled:
            return restored
        folder = self._folder(episode)
        previous = self._previous(episode)
        source = self.ctx.proposer_source or self.ctx.seed_source or program.text
        settings = self.ctx.training.with_seed(seed)
        tokens, hindsight = None, 0
        if previous is not None:
            rows = self._hindsight_rows(program, seed)
            if not rows:  # nothing improving measured yet: the previous weights stand
                self._load(previous)
                # Stored, so that a resume (which has seen more of this episode's results
                # by then) keeps this decision instead of training.
                return {"reused": int(previous.parent.name), "losses": []}
            tokens = folder.parent / "hindsight.json"
            write_text_atomic(tokens, json.dumps(
                {"input_ids": [r[0] for r in rows], "labels": [r[1] for r in rows]},
                separators=(",", ":")))
            settings = replace(settings, samples=None)
            hindsight = len(rows)
        self.name, self.failure = self.NAME, ""
        try:
            self.proposer, report = T5Sampler.train(
                source, self.data, settings, self.worker, out=folder,
                sampling=self.ctx.sampling, on_progress=self._progress(episode),
                timeout=self.ctx.train_timeout, tokens=tokens,
                init_from=previous if previous is not None else self.ctx.proposer_init)
        except WorkerError as exc:
            self._fall_back(episode, str(exc))
            return {"failed": str(exc), "losses": []}
        meta_path = folder / "proposer.json"  # so a checkpoint's report says the same
        meta = json.loads(meta_path.read_text())
        write_text_atomic(meta_path, json.dumps({**meta, "rows": hindsight}, indent=2))
        # rows: hindsight and replayed pairs (0: refinement pairs)
        return {**report.to_dict(), "rows": hindsight}

    def _hindsight_rows(self, program: Program, seed: int) -> list[tuple[list[int], list[int]]]:
        """Tokenized hindsight pairs (with their repeats), then as many replayed refinement
        pairs, in a seeded order."""
        tokenizer = load_tokenizer(self.data.tokenizer_path)
        rows: list[tuple[list[int], list[int]]] = []
        for worse, better, repeats in hindsight_pairs(self.observed, self.sign):
            if self.data.view is not None:  # the worse variant's view; no source rendered
                target = view_target(program, worse, better, self.data.format)
                if target is None:
                    continue  # the two differ only where the model never writes
                before = view_text(program, worse)
            elif self.data.format is TargetFormat.SOURCE:
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
        data = json.loads(self.data.tokens_path.read_text())
        replay = list(zip(data["input_ids"], data["labels"], strict=True))
        rng = random.Random(seed)
        rows += rng.sample(replay, min(len(replay), max(len(rows), 32)))
        rng.shuffle(rows)
        return rows

    # -- proposing -----------------------------------------------------------------------
    def _sample(self, model: T5Sampler, parent: Program, n: int, seed: int,
                exclude: Collection[str]) -> list[Proposal]:
        prepared = model.prepare(parent)

        def draw(round_: int) -> list[Proposal]:
            texts = model.sample_texts(parent, width(n), round_seed(seed, round_), prepared)
            return [Proposal(model.ground(parent, text), text, "t5") for text in texts]

        pool, rest = gather(draw, n, self.ctx.sampling.rounds, exclude)
        pool += self._companions(parent, n, seed, {*exclude, *_hashes(pool)})
        chosen = [pool[i] for i in self._rank(parent, pool, n)]
        return (chosen + rest)[:n]

    def _companions(self, parent: Program, n: int, seed: int,
                    exclude: Collection[str]) -> list[Proposal]:
        """`n` suggestions of the GP sampler and `n` grammar draws, valid and new, for the
        pool the surrogate ranks."""
        found: list[Proposal] = []
        seen = set(exclude)
        rng = random.Random(round_seed(seed, 1 << 20))
        suggested = [replace(p, source="gp") for p in self.gp.propose(parent, n, seed, exclude)]
        drawn = [replace(p, source="draw") for p in self.draws.propose(parent, n, rng)]
        for proposal in suggested + drawn:
            variant = proposal.mutation.variant
            if proposal.mutation.ok and variant is not None and variant.hash not in seen:
                seen.add(variant.hash)
                found.append(proposal)
        return found

    def _rank(self, parent: Program, pool: Sequence[Proposal], n: int) -> list[int]:
        """Indices into `pool` of the `n` candidates to evaluate."""
        return rank(parent, self.observed, self.sign, pool, n, self.running)

    def observe(self, observations: Sequence[Observation]) -> None:
        record(self.observed, observations)
        self.gp.observe(observations)

    def pending(self, values: Sequence[Mapping[str, Any]]) -> None:
        """Candidates under evaluation (--strategy async): the surrogate believes its own
        mean at each before it ranks, so a new pick moves away from them."""
        self.running = [dict(v) for v in values]
        self.gp.pending(values)


def _hashes(pool: Sequence[Proposal]) -> list[str]:
    return [p.mutation.variant.hash for p in pool if p.mutation.variant is not None]


register_proposer("learned", HindsightProposer)
