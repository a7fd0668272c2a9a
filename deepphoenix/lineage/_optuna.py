"""A run as an Optuna study in Optuna's own RDB storage (SQLite), so that
``optuna-dashboard sqlite:///study.db`` and ``optuna.load_study`` open it.

One trial per evaluated variant, in the order the evaluations finished: the site values
as params, the score as the value in the run's direction (a study of the run's
direction), failed and rejected evaluations as FAIL trials; hash, status, stage, reason,
parameter count and first episode as user attributes; a score's per-step losses as
intermediate values. Each param's distribution comes from the run's grammar (rebuilt from
what the run stored: the grammar TOML, or the built-in or inferred grammar of the seed
text), widened to every observed value; a site the grammar does not bound gets the range
it was observed in.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepphoenix.errors import DeepPhoenixError, RunDirError
from deepphoenix.grammar import Grammar, Kind, SiteSpec, parse_grammar
from deepphoenix.mutator import parse_candidate, resolve_grammar
from deepphoenix.objectives import Direction
from deepphoenix.status import VariantStatus
from deepphoenix.store import RunStore, VariantRow
from deepphoenix.store_io import apply_umask

__all__ = ["OptunaExport", "run_grammar", "write_optuna"]

log = logging.getLogger(__name__)
_EVALUATED = (VariantStatus.SCORED, VariantStatus.FAILED, VariantStatus.REJECTED)


@dataclass(frozen=True, slots=True)
class OptunaExport:
    path: Path
    study_name: str
    complete: int
    failed: int


def run_grammar(store: RunStore) -> Grammar | None:
    """The run's grammar as the run rebuilds it on resume; None when it cannot be rebuilt
    here (a third-party grammar that is not installed, a run stopped before its seed was
    stored)."""
    config = store.get_meta("config", {})
    spec = str(config.get("grammar", "t5"))
    toml_text = store.get_meta("grammar_toml")
    seed_text = store.get_meta("seed_text")
    try:
        if isinstance(toml_text, str):
            grammar = parse_grammar(toml_text, origin=spec, default_name=Path(spec).stem)
        elif isinstance(seed_text, str):
            grammar = resolve_grammar(spec, seed_text, "seed")
        else:
            return None
        if grammar.unresolved and isinstance(seed_text, str):
            # Domains relative to the file: resolved against the seed (its files), as the
            # run did.
            grammar = parse_candidate(seed_text, grammar, "seed").grammar  # or a bundle
        return grammar
    except DeepPhoenixError as exc:
        log.warning("grammar %r cannot be rebuilt (%s); distributions from observed values",
                    spec, exc)
    return None


def write_optuna(run_dir: Path, out: Path, force: bool = False) -> OptunaExport:
    """Write RUN_DIR's evaluations to a new Optuna SQLite study at `out`. An existing
    `out` is a `RunDirError` unless `force` (then it is replaced)."""
    import optuna

    out = Path(out)
    if out.exists() and not force:
        raise RunDirError(f"{out} exists; pass --force to replace it")
    with RunStore.open(run_dir) as store:
        grammar = run_grammar(store)
        direction = store.direction
        objective = str(store.objective.get("name", "score"))
        config = store.get_meta("config", {})
        variants = sorted((v for v in store.variants() if v.status in _EVALUATED),
                          key=lambda v: (v.scored_at or v.created_at, v.hash))
    distributions = _distributions(grammar, variants)
    name = Path(run_dir).resolve().name
    try:
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(out)) from None
    os.close(fd)
    storage: Any = None
    try:
        storage = optuna.storages.RDBStorage(f"sqlite:///{tmp}")
        study = optuna.create_study(
            storage=storage, study_name=name,
            direction=optuna.study.StudyDirection.MAXIMIZE if direction is Direction.MAXIMIZE
            else optuna.study.StudyDirection.MINIMIZE)
        study.set_user_attr("objective", objective)
        study.set_user_attr("run_dir", str(Path(run_dir).resolve()))
        study.set_user_attr("config", config)
        trials = [_trial(v, distributions) for v in variants]
        study.add_trials(trials)
        storage.remove_session()
        storage.engine.dispose()
        storage = None
        apply_umask(Path(tmp))
        os.replace(tmp, out)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(out)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    complete = sum(1 for t in trials if t.state == optuna.trial.TrialState.COMPLETE)
    return OptunaExport(out, name, complete, len(trials) - complete)


def _trial(variant: VariantRow, distributions: dict[str, Any]) -> Any:
    import optuna

    params = {k: v for k, v in variant.values.items() if k in distributions
              and _fits(v, distributions[k])}
    attrs = {"hash": variant.hash, "status": variant.status, "stage": variant.stage,
             "reason": variant.reason, "params_count": variant.metrics.get("params"),
             "first_episode": variant.first_episode}
    attrs = {k: v for k, v in attrs.items() if v not in (None, "")}
    scored = (variant.status == VariantStatus.SCORED and variant.score is not None
              and math.isfinite(variant.score))
    losses = variant.metrics.get("losses") if scored else None
    steps = ({i: float(x) for i, x in enumerate(losses)
              if isinstance(x, int | float) and math.isfinite(x)}
             if isinstance(losses, list) else None)
    return optuna.trial.create_trial(
        state=optuna.trial.TrialState.COMPLETE if scored else optuna.trial.TrialState.FAIL,
        value=variant.score if scored else None,
        params=params, distributions={k: distributions[k] for k in params},
        user_attrs=attrs, intermediate_values=steps or None)


def _fits(value: Any, distribution: Any) -> bool:
    try:
        return bool(distribution._contains(distribution.to_internal_repr(value)))
    except (TypeError, ValueError):
        return False


def _distributions(grammar: Grammar | None, variants: list[VariantRow]) -> dict[str, Any]:
    observed: dict[str, list[Any]] = {}
    for variant in variants:
        for key, value in variant.values.items():
            observed.setdefault(key, []).append(value)
    specs = {s.name: s for s in grammar.sites} if grammar is not None else {}
    found = {}
    for key, values in observed.items():
        distribution = _distribution(specs.get(key), values)
        if distribution is not None:
            found[key] = distribution
    return found


def _distribution(spec: SiteSpec | None, values: list[Any]) -> Any:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    kind = spec.kind if spec is not None else _observed_kind(values)
    if kind is None:
        return None
    if kind in (Kind.BOOL, Kind.CATEGORICAL):
        choices: list[Any] = ([False, True] if kind is Kind.BOOL
                              else list(spec.domain.choices) if spec is not None else [])
        for value in values:
            if value not in choices and isinstance(value, bool | str | int | float):
                choices.append(value)
        return CategoricalDistribution(choices) if choices else None
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)
               and math.isfinite(v)]
    if not numbers:
        return None
    low, high = min(numbers), max(numbers)
    if spec is not None and spec.domain.low is not None and spec.domain.high is not None:
        low, high = min(low, spec.domain.low), max(high, spec.domain.high)
    if kind is Kind.INT:
        if not all(isinstance(v, int) for v in numbers):
            return FloatDistribution(float(low), float(high))
        return IntDistribution(math.floor(low), math.ceil(high))
    log_scale = kind is Kind.LOG_FLOAT and low > 0
    return FloatDistribution(float(low), float(high), log=log_scale)


def _observed_kind(values: list[Any]) -> Kind | None:
    if all(isinstance(v, bool) for v in values):
        return Kind.BOOL
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return Kind.INT
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return Kind.FLOAT
    if all(isinstance(v, str) for v in values):
        return Kind.CATEGORICAL
    return None
