"""The search space of Optuna's samplers over a grammar's sites (the ``tpe`` and ``gp``
proposers' drawers, `TPEDrawer` and `GPDrawer`).

Each proposable site becomes an Optuna distribution (int, float, log-float, categorical,
bool) that holds exactly the site's domain, so no draw lands outside it (a log-int site on
a grid, `multiple_of`, is searched by its grid index: Optuna's log-scale ints take no
step); derived sites are derived by the grammar; a draw that breaks an invariant is
mended by the grammar's joint moves where its sites have `moves_with` partners (the
partner takes its nearest valid value).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from deepphoenix.errors import ConfigError
from deepphoenix.grammar import Kind, SiteSpec, repair
from deepphoenix.mutator import Program

__all__ = ["grid_steps", "joint_repair", "keep_inactive", "optuna_module", "site_distributions",
           "trial_params", "trial_values"]


def optuna_module() -> Any:
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
    optuna = optuna_module()
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


def keep_inactive(parent: Program, values: dict[str, Any]) -> dict[str, Any]:
    """A draw with every site whose `when` fails under it held at the parent's value: TPE
    samples all sites at once, and an edit to an inactive site (the gpt grammar's
    `activation` under a SwiGLU MLP) is refused, which would lose the whole draw."""
    merged = {**parent.values, **values}
    return {k: parent.values[k] if k in parent.values and not parent.grammar.active(
                parent.grammar.site(k), merged) else v for k, v in values.items()}


def trial_params(distributions: dict[str, Any], values: Mapping[str, Any],
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


def trial_values(params: Mapping[str, Any], grids: Mapping[str, int]) -> dict[str, Any]:
    """A draw's site values from a trial's parameters (grid indices times their step)."""
    return {k: v * grids[k] if k in grids else v for k, v in params.items()}


def joint_repair(parent: Program, values: dict[str, Any]) -> dict[str, Any] | None:
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
