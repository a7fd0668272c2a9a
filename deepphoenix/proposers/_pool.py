"""Sample widely, then rank: a pool of valid, distinct, new candidates, and the few of it
that a Gaussian-process surrogate (`Surrogate`) fitted on the run's scored variants
expects to improve most. The learned proposer ranks its T5's samples this way; the
``random-gp`` ablation ranks the grammar's random draws the same way."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from deepphoenix.mutator import Program
from deepphoenix.proposers._distinct import as_repeat
from deepphoenix.proposers._protocol import Observation
from deepphoenix.proposers._records import Proposal
from deepphoenix.proposers._surrogate import Surrogate, encode
from deepphoenix.status import VariantStatus

__all__ = ["MIN_SAMPLES", "MIN_SCORED", "WIDEN", "gather", "rank", "record", "width"]

WIDEN = 8  # samples drawn per candidate slot, before ranking
MIN_SAMPLES = 32
MIN_SCORED = 3  # scored variants before the surrogate ranks (before: the draw's order)


def width(n: int) -> int:
    """How many samples a batch of `n` candidate slots draws before ranking."""
    return max(WIDEN * n, MIN_SAMPLES)


def gather(draw: Callable[[int], Iterable[Proposal]], n: int, rounds: int,
           exclude: Collection[str] = ()) -> tuple[list[Proposal], list[Proposal]]:
    """(pool, rest): `pool` holds the valid candidates of `draw(round)` whose variants are
    new (not in `exclude`, not met earlier), drawn again, up to `rounds` rounds, until it
    holds `n`; `rest` at most `n` of the draws' own failures and repeats (marked
    `DUPLICATE`), which fill the slots the pool cannot."""
    pool: list[Proposal] = []
    rest: list[Proposal] = []
    seen = set(exclude)
    for round_ in range(max(1, rounds)):
        for proposal in draw(round_):
            mutation = proposal.mutation
            variant = mutation.variant
            if mutation.ok and variant is not None and variant.hash not in seen:
                seen.add(variant.hash)
                pool.append(proposal)
            elif len(rest) < n:
                rest.append(Proposal(as_repeat(mutation, exclude), proposal.text))
        if len(pool) >= n:
            break
    return pool, rest


def rank(parent: Program, observed: Sequence[Observation], sign: float,
         pool: Sequence[Proposal], n: int,
         running: Sequence[Mapping[str, Any]] = ()) -> list[int]:
    """Indices into `pool` of the `n` candidates to evaluate: by expected improvement once
    `MIN_SCORED` variants are scored, else the pool's own order. `sign` is -1 for a
    maximized score. Failed variants, those rejected at build (over --max-params) and
    those stopped early (--fidelity asha: the bottom of their rung) count as the worst
    score seen, so the ranking learns to avoid them. `running`: the values of candidates
    under evaluation (--strategy async), where the surrogate believes its own mean."""
    scored = [o for o in observed
              if o.status != VariantStatus.PENDING]
    good = [sign * o.score for o in scored if o.score is not None]
    specs = parent.proposable
    candidates = [encode(specs, dict(p.mutation.variant.values)) for p in pool
                  if p.mutation.variant is not None]
    feasible = _feasible(specs, observed, candidates) if len(pool) > n else None
    if len(good) < MIN_SCORED or len(pool) <= n:
        # The draw's order, those expected to keep the constraints first: before the
        # surrogate has anything to rank by, a T5 that grows the model must not spend
        # every draw of a capped run on candidates over the cap.
        order = list(range(len(pool)))
        if feasible is not None:
            order = feasible + [i for i in order if i not in feasible]
        return order[:n]
    worst = max(good)
    x = [encode(specs, o.values) for o in scored]
    y = [sign * o.score if o.score is not None else worst for o in scored]
    believed = [encode(specs, values) for values in running]
    if feasible is not None and len(feasible) >= n:  # rank only those expected to pass
        chosen = Surrogate(x, y).choose([candidates[i] for i in feasible], n,
                                        believed=believed)
        return [feasible[i] for i in chosen]
    if feasible:  # too few expected to pass: all of them, then the rest by the surrogate
        others = [i for i in range(len(candidates)) if i not in feasible]
        chosen = Surrogate(x, y).choose([candidates[i] for i in others], n - len(feasible),
                                        believed=believed)
        return feasible + [others[i] for i in chosen]
    return Surrogate(x, y).choose(candidates, n, believed=believed)


def _feasible(specs: Sequence[Any], observed: Sequence[Observation],
              candidates: Sequence[Sequence[float]]) -> list[int] | None:
    """Indices of the candidates a Gaussian process of the observed constraint violations
    (``Observation.violation``: > 0 broken, <= 0 within; --max-params or --constraint)
    expects to keep the run's constraints, when at least one observation broke one (the
    list may be short of `n`, or empty); else None. So the pool's best-looking candidates
    are not the over-cap ones again and again."""
    known = [o for o in observed if o.violation is not None]
    if not any(o.violation > 0 for o in known if o.violation is not None):
        return None
    values = [float(o.violation or 0.0) for o in known]
    model = Surrogate([encode(specs, o.values) for o in known], values)
    mean, _sd = model.predict(candidates)
    # The boundary: halfway between the largest violation seen within the constraints
    # and the smallest seen past them (a variant right at the cap is 0, and its
    # neighbours' smoothed predictions sit just above it).
    within = [v for v in values if v <= 0.0]
    bound = (max(within) + min(v for v in values if v > 0.0)) / 2 if within else 0.0
    passing = [i for i, m in enumerate(mean * model.std + model.mean) if m <= bound]
    return passing


def record(observed: list[Observation], observations: Sequence[Observation]) -> None:
    """Add `observations` to `observed`, in place. A candidate told again (a higher rung
    under --fidelity asha) replaces its earlier observation where it stands."""
    index = {o.child: i for i, o in enumerate(observed)}
    for seen in observations:
        at = index.get(seen.child)
        if at is None:
            index[seen.child] = len(observed)
            observed.append(seen)
        else:
            observed[at] = seen
