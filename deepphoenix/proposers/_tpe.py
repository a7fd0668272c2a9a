"""`tpe`: Optuna's TPE sampler over a grammar's sites, as a proposer.

Each proposable site becomes an Optuna distribution (int, float, log-float, categorical,
bool) that holds exactly the site's domain, so no draw lands outside it (a log-int site on
a grid, `multiple_of`, is searched by its grid index: Optuna's log-scale ints take no
step); derived sites are derived by the grammar; a draw that breaks an invariant is
mended by the grammar's joint moves where its sites have `moves_with` partners (the
partner takes its nearest valid value), else recorded as rejected with its reason (and
told to the study as failed). A candidate the run's constraints blocked before evaluation
(``--max-params``, ``--constraint``) is told to the study as an infeasible trial (Optuna's
constraints), so both samplers learn where the cap lies. Candidates are asked in batches
(the constant-liar strategy keeps one batch's asks apart), so parallel workers stay busy.

There is no state that lives only in memory: before each batch a fresh study is rebuilt
from every observed result, in the order the run recorded them, with a sampler seeded by
the batch's seed. A resumed run replays the same observations, so it asks the same
candidates as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from deepphoenix.errors import ConfigError
from deepphoenix.grammar import Kind, SiteSpec, repair
from deepphoenix.mutator import Program
from deepphoenix.objectives import Direction
from deepphoenix.outcome import Outcome
from deepphoenix.proposers._distinct import draw_distinct
from deepphoenix.proposers._protocol import (
    Observation,
    Proposer,
    ProposerContext,
    register_proposer,
)
from deepphoenix.proposers._random import Proposal
from deepphoenix.status import VariantStatus

__all__ = ["TPEProposer", "grid_steps", "site_distributions"]


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:  # pragma: no cover - optuna is a dependency
        raise ConfigError("the tpe proposer needs Optuna: pip install optuna") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def site_distributions(sites: Sequence[SiteSpec]) -> dict[str, Any]:
    """An Optuna distribution per site (listed values and categorical choices as
    categorical, `multiple_of` as the int step, log kinds on a log scale; a log-int site on
    a grid as its grid index, see `grid_steps`); `ConfigError` for a site TPE cannot search
    (a numeric site without both bounds)."""
    optuna = _optuna()
    dist = optuna.distributions
    found: dict[str, Any] = {}
    for spec in sites:
        domain = spec.domain
        if spec.kind is Kind.BOOL:
            found[spec.name] = dist.CategoricalDistribution([False, True])
        elif spec.kind is Kind.CATEGORICAL:
            found[spec.name] = dist.CategoricalDistribution(list(domain.choices))
        elif domain.values:  # a listed set of numbers: unordered to TPE, as Optuna's own
            found[spec.name] = dist.CategoricalDistribution(list(domain.values))
        elif domain.low is None or domain.high is None or not (
                math.isfinite(domain.low) and math.isfinite(domain.high)):
            raise ConfigError(f"the tpe proposer needs min and max for site {spec.name!r} "
                              f"({spec.kind.value}); add them to the grammar")
        elif spec.kind in (Kind.INT, Kind.LOG_INT):
            step = domain.multiple_of or 1
            low = math.ceil(domain.low / step)
            high = math.floor(domain.high / step)
            if spec.kind is Kind.LOG_INT:
                # Optuna's log-scale ints take no step: search the grid index k (the value
                # is k * step), log-uniform like the value itself (log k*s = log k + log s).
                found[spec.name] = dist.IntDistribution(low, high, log=True)
            else:
                found[spec.name] = dist.IntDistribution(low * step, high * step, step=step)
        else:
            found[spec.name] = dist.FloatDistribution(domain.low, domain.high,
                                                      log=spec.kind is Kind.LOG_FLOAT)
    return found


def grid_steps(sites: Sequence[SiteSpec]) -> dict[str, int]:
    """The sites `site_distributions` searches by grid index, with their grid: log-int
    sites with a `multiple_of` above 1 (a parameter k stands for the value k * step)."""
    return {spec.name: spec.domain.multiple_of for spec in sites
            if spec.kind is Kind.LOG_INT and not spec.domain.values
            and spec.domain.multiple_of and spec.domain.multiple_of > 1}


def _inside(distribution: Any, value: Any) -> bool:
    choices = getattr(distribution, "choices", None)
    if choices is not None:
        return value in choices
    step = getattr(distribution, "step", None) or 1
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and distribution.low <= value <= distribution.high
            and (step == 1 or (value - distribution.low) % step == 0))


class TPEProposer(Proposer):
    """Optuna's TPE over the parent program's proposable sites."""

    name = "tpe"

    def __init__(self, ctx: ProposerContext) -> None:
        self.optuna = _optuna()
        self.direction = ctx.direction
        self.rounds = ctx.draw_rounds
        self.history: dict[str, Observation] = {}  # by child: a later rung replaces
        self.running: list[dict[str, Any]] = []  # values being evaluated (async runs)

    def observe(self, observations: Sequence[Observation]) -> None:
        for seen in observations:
            self.history[seen.child] = seen

    def pending(self, values: Sequence[Mapping[str, Any]]) -> None:
        """Candidates under evaluation: running trials, which the constant liar treats as
        scoring the worst seen, so the next ask moves away from them."""
        self.running = [dict(v) for v in values]

    def _sampler(self, seed: int) -> Any:
        """The Optuna sampler of a batch (constant liar: asks of one batch stay apart)."""
        return self.optuna.samplers.TPESampler(seed=seed, constant_liar=True)

    def _study(self, distributions: dict[str, Any], seed: int,
               grids: Mapping[str, int] | None = None) -> Any:
        """A fresh study told every observation (and the running candidates); `grids`:
        the sites searched by grid index (`grid_steps`)."""
        grids = grids or {}
        optuna = self.optuna
        study = optuna.create_study(direction=self.direction, sampler=self._sampler(seed))
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
            params = _params(distributions, seen.values, grids)
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
            params = _params(distributions, values, grids)
            if params is not None:
                study.add_trial(optuna.trial.create_trial(
                    params=params, distributions=distributions, state=states.RUNNING))
        return study

    def propose(self, parent: Program, n: int, seed: int,
                exclude: Collection[str] = ()) -> list[Proposal]:
        searched = [spec for spec in parent.proposable if spec.name in parent.present]
        distributions = site_distributions(searched)
        grids = grid_steps(searched)
        study = self._study(distributions, seed, grids)

        def draw(_round: int, count: int) -> list[Proposal]:
            proposals = []
            for _ in range(count):
                trial = study.ask(distributions)
                values = _keep_inactive(parent, _values(trial.params, grids))
                edits = {k: v for k, v in values.items() if v != parent.values.get(k)}
                mutation = parent.apply(edits)
                if mutation.outcome is Outcome.INVARIANT:
                    repaired = _joint_repair(parent, values)
                    if repaired is not None:
                        values = repaired
                        edits = {k: v for k, v in values.items()
                                 if v != parent.values.get(k)}
                        mutation = parent.apply(edits)
                if mutation.outcome in (Outcome.INVARIANT, Outcome.OUT_OF_DOMAIN):
                    study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
                proposals.append(Proposal(mutation, json.dumps(values, sort_keys=True)))
            return proposals

        return draw_distinct(draw, n, self.rounds, exclude)


def _keep_inactive(parent: Program, values: dict[str, Any]) -> dict[str, Any]:
    """A draw with every site whose `when` fails under it held at the parent's value: TPE
    samples all sites at once, and an edit to an inactive site (the gpt grammar's
    `activation` under a SwiGLU MLP) is refused, which would lose the whole draw."""
    merged = {**parent.values, **values}
    return {k: parent.values[k] if k in parent.values and not parent.grammar.active(
                parent.grammar.site(k), merged) else v for k, v in values.items()}


def _params(distributions: dict[str, Any], values: Mapping[str, Any],
            grids: Mapping[str, int]) -> dict[str, Any] | None:
    """A trial's parameters from a variant's site values (a grid index for a site in
    `grids`); None outside the domain."""
    params = {}
    for name in distributions:
        if name not in values:
            continue
        value, step = values[name], grids.get(name)
        if step is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value % step:
                return None  # off the grid: outside the domain
            value //= step
        params[name] = value
    if len(params) != len(distributions) or not all(
            _inside(distributions[k], v) for k, v in params.items()):
        return None
    return params


def _values(params: Mapping[str, Any], grids: Mapping[str, int]) -> dict[str, Any]:
    """A draw's site values from a trial's parameters (grid indices times their step)."""
    return {k: v * grids[k] if k in grids else v for k, v in params.items()}


def _joint_repair(parent: Program, values: dict[str, Any]) -> dict[str, Any] | None:
    """A draw that breaks an invariant, with a `moves_with` partner moved to its nearest
    value that keeps the grammar's checks (the grammar's own joint-move rule: TPE samples
    ``n_head`` and ``n_embd`` independently, and about half such draws break
    ``n_embd % n_head == 0``); None when no partner can mend it."""
    partners = list(dict.fromkeys(
        partner for spec in parent.proposable if spec.name in values
        for partner in spec.moves_with if partner in values and parent.editable(partner)))
    if not partners:
        return None
    mended = repair(parent.grammar, {**parent.values, **values}, partners, parent.present)
    return None if mended is None else {k: mended[k] for k in values}


register_proposer("tpe", TPEProposer)
