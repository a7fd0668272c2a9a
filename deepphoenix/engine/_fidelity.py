"""Multi-fidelity evaluation: the rungs of asynchronous successive halving (ASHA, Li et
al. 2020) and its promotion rule.

A candidate is first scored on a small share of the budget (rung 0), and moves up a rung
only while it is in the top ``1/eta`` of the results recorded at its rung; the top rung
is the full evaluation, the only score that can become the run's best. Scores are only
ever compared at the same rung. The budget is the built-in objectives' few-shot rows
(each rung trains from scratch on the first N rows: the few-shot score of a rung is the
mean loss over a prefix of the full epoch) or, for a user objective, the steps it reports
through ``ctx.report`` (``ctx.should_stop()`` turns True at the rung's step).

Promotion is asynchronous: whenever a worker frees, the best result of any rung that is in
its rung's top ``1/eta`` and not yet promoted goes up (highest rung first), and only when
none is waiting does a new candidate start. A candidate left at a lower rung is recorded
as ``pruned`` with that rung; a later promotion (its rung filled up, so its rank now
qualifies) brings it back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from deepphoenix.errors import ConfigError, UnknownNameError
from deepphoenix.objectives import Direction

__all__ = ["FIDELITIES", "RungResult", "check_fidelity", "promotable", "rung_resources"]

FIDELITIES = ("full", "asha")
DEFAULT_RUNGS = 3  # rungs when the first rung's size is not given: top / eta**2, / eta, top


@dataclass(frozen=True, slots=True)
class RungResult:
    """One finished evaluation at one rung: a score, or None when it failed."""

    hash: str
    rung: int
    score: float | None


def rung_resources(top: int, eta: int, first: int | None = None,
                   what: str = "fewshot_samples") -> list[int]:
    """The budget of each rung, smallest first, growing by `eta`, the last one `top`.

    `first` is rung 0's budget (None: ``ceil(top / eta**2)``, three rungs). `ConfigError`
    for an eta below 2, a first rung larger than the budget, or a budget too small to
    split into two rungs."""
    if not isinstance(eta, int) or isinstance(eta, bool) or eta < 2:
        raise ConfigError(f"Expected an int eta >= 2 (each rung eta times the one below) "
                          f"but got eta={eta!r}")
    if first is None:
        first = max(1, math.ceil(top / eta ** (DEFAULT_RUNGS - 1)))
    elif not isinstance(first, int) or isinstance(first, bool) or first < 1:
        raise ConfigError(f"Expected int >= 1 but got min_resource={first!r}")
    if first > top:
        raise ConfigError(f"the first rung (min_resource={first}) is larger than the whole "
                          f"budget ({what}={top}); lower --min-resource or raise the budget")
    if first == top:
        raise ConfigError(f"--fidelity asha needs at least two rungs, but the first rung "
                          f"is the whole budget ({what}={top}); lower --min-resource")
    found = [first]
    while found[-1] * eta < top:
        found.append(found[-1] * eta)
    found.append(top)
    return found


def promotable(results: Sequence[RungResult], promoted: set[tuple[str, int]], eta: int,
               direction: Direction, top_rung: int,
               allowed: set[str] | None = None) -> tuple[str, int] | None:
    """The (hash, rung) to promote next, or None: the best candidate, highest rung first,
    in the top ``floor(n / eta)`` of the `n` results at its rung (failures rank last)
    that is not in `promoted` (already started at the rung above). `allowed` limits the
    candidates (a greedy batch promotes only its own)."""
    for rung in range(top_rung - 1, -1, -1):
        here = [r for r in results if r.rung == rung]
        quota = len(here) // eta
        if quota == 0:
            continue
        sign = 1.0 if direction is Direction.MINIMIZE else -1.0
        scored = sorted((r for r in here if r.score is not None),
                        key=lambda r: sign * r.score)  # type: ignore[operator]
        for result in scored[:quota]:
            if (result.hash, rung) in promoted:
                continue
            if allowed is not None and result.hash not in allowed:
                continue
            return result.hash, rung
    return None


def check_fidelity(name: str) -> None:
    if name not in FIDELITIES:
        raise UnknownNameError("fidelity", str(name), FIDELITIES)
