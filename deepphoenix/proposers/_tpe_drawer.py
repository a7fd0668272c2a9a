"""`TPEDrawer`: Optuna's TPE sampler over a grammar's sites, as a drawer (the ``tpe``
proposer; `GPDrawer` swaps in the GP sampler). The search space is `_tpe`'s: every site an
Optuna distribution holding its domain, inactive sites held, broken draws mended by the
grammar's joint moves, else recorded as rejected (and told to the study as failed). A
candidate the run's constraints blocked before evaluation (``--max-params``,
``--constraint``) is told to the study as an infeasible trial (Optuna's constraints), so
both samplers learn where the cap lies. Candidates are asked in batches (the
constant-liar strategy keeps one batch's asks apart), so parallel workers stay busy.

There is no state that lives only in memory: each batch (draw round 0) rebuilds a fresh
study from every observed result, in the order the run recorded them, with a sampler
seeded by the batch's seed; later rounds ask the same study again. A resumed run replays
the same observations, so it asks the same candidates as an uninterrupted one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from deepphoenix.mutator import Program
from deepphoenix.objectives import Direction
from deepphoenix.outcome import Outcome
from deepphoenix.proposers._drawer import Drawer
from deepphoenix.proposers._protocol import Observation
from deepphoenix.proposers._records import Proposal
from deepphoenix.proposers._tpe import (
    grid_steps,
    joint_repair,
    keep_inactive,
    optuna_module,
    site_distributions,
    trial_params,
    trial_values,
)
from deepphoenix.status import VariantStatus

__all__ = ["TPEDrawer"]


class TPEDrawer(Drawer):
    """Optuna's TPE over the parent program's proposable sites."""

    def __init__(self, direction: Direction | str = Direction.MINIMIZE, rounds: int = 4,
                 source: str = "") -> None:
        self.optuna = optuna_module()
        self.direction = Direction.parse(direction)
        self.rounds = rounds
        self.source = source
        self.history: dict[str, Observation] = {}  # by child: a later rung replaces
        self.running: list[dict[str, Any]] = []  # values being evaluated (async runs)
        self.batch: tuple[Any, dict[str, Any], dict[str, int]] | None = None

    def tell(self, observations: Sequence[Observation]) -> None:
        for seen in observations:
            self.history[seen.child] = seen

    def pending(self, values: Sequence[Mapping[str, Any]]) -> None:
        """Candidates under evaluation: running trials, which the constant liar treats as
        scoring the worst seen, so the next ask moves away from them."""
        self.running = [dict(v) for v in values]

    def sampler(self, seed: int) -> Any:
        """The Optuna sampler of a batch (constant liar: asks of one batch stay apart)."""
        return self.optuna.samplers.TPESampler(seed=seed, constant_liar=True)

    def study(self, distributions: dict[str, Any], seed: int,
               grids: Mapping[str, int] | None = None) -> Any:
        """A fresh study told every observation (and the running candidates); `grids`:
        the sites searched by grid index (`grid_steps`)."""
        grids = grids or {}
        optuna = self.optuna
        study = optuna.create_study(direction=self.direction, sampler=self.sampler(seed))
        states = optuna.trial.TrialState
        # The run's constraints (--max-params, --constraint), as Optuna's: a candidate a
        # check blocked is a complete trial that breaks its constraint (TPE puts it among
        # the worst; GP-BO models where candidates are feasible), scored the worst score
        # seen, since it never ran; every other complete trial carries its own margin.
        constrained = any(seen.violation is not None for seen in self.history.values())
        scores = [seen.score for seen in self.history.values() if seen.score is not None]
        worst = (max(scores) if self.direction is Direction.MINIMIZE else min(scores)
                 ) if scores else 0.0
        for seen in self.history.values():
            params = trial_params(distributions, seen.values, grids)
            if params is None:
                continue  # outside the domain: nothing TPE can use
            margin = {"constraints": {"run": seen.violation if seen.violation is not None
                                      else 0.0}} if constrained else {}
            if seen.status == VariantStatus.PRUNED and seen.rung is not None:
                # Stopped early: TPE ranks pruned trials by their last intermediate value,
                # below every complete one.
                intermediate = ({seen.rung: seen.rung_score}
                                if seen.rung_score is not None else None)
                study.add_trial(optuna.trial.create_trial(
                    params=params, distributions=distributions, state=states.PRUNED,
                    intermediate_values=intermediate, **margin))
                continue
            if seen.score is None and seen.violation is not None and seen.violation > 0:
                study.add_trial(optuna.trial.create_trial(
                    params=params, distributions=distributions, state=states.COMPLETE,
                    value=worst, **margin))
                continue
            state = states.COMPLETE if seen.score is not None else states.FAIL
            study.add_trial(optuna.trial.create_trial(
                params=params, distributions=distributions, state=state,
                value=seen.score if seen.score is not None else None,
                **(margin if seen.score is not None else {})))
        for values in self.running:
            params = trial_params(distributions, values, grids)
            if params is not None:
                study.add_trial(optuna.trial.create_trial(
                    params=params, distributions=distributions, state=states.RUNNING))
        return study

    def draw(self, parent: Program, n: int, seed: int, round_: int = 0) -> list[Proposal]:
        if round_ == 0 or self.batch is None:
            searched = [spec for spec in parent.proposable if spec.name in parent.present]
            distributions = site_distributions(searched)
            grids = grid_steps(searched)
            self.batch = (self.study(distributions, seed, grids), distributions, grids)
        study, distributions, grids = self.batch
        return [self._ask(parent, study, distributions, grids) for _ in range(n)]

    def _ask(self, parent: Program, study: Any, distributions: dict[str, Any],
             grids: Mapping[str, int]) -> Proposal:
        """One trial of `study` as a candidate; a draw the grammar refuses is told failed."""
        trial = study.ask(distributions)
        values = keep_inactive(parent, trial_values(trial.params, grids))
        edits = {k: v for k, v in values.items() if v != parent.values.get(k)}
        mutation = parent.apply(edits)
        if mutation.outcome is Outcome.INVARIANT:
            repaired = joint_repair(parent, values)
            if repaired is not None:
                values = repaired
                edits = {k: v for k, v in values.items() if v != parent.values.get(k)}
                mutation = parent.apply(edits)
        if mutation.outcome in (Outcome.INVARIANT, Outcome.OUT_OF_DOMAIN):
            study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
        return Proposal(mutation, json.dumps(values, sort_keys=True), self.source)
