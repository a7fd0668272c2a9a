"""Scores checked again: a stored score against the run database's own integrity data
(`score_mismatches`), and against a fresh evaluation (`rescore`, `rescore_best`,
`rescore_run`).

A candidate's code runs in the process that computes its score, so a candidate can make
its own evaluation report any value (docs/sandbox.md, "Scores"). What catches such a
forgery, or a run database whose scores were rewritten: the score evaluated again in a
process where no candidate ever ran, compared within a tolerance. A score that does not
reproduce is evaluated a third time: two re-scores that disagree with each other say the
objective is nondeterministic (reported as such, never as a forgery); two that agree with
each other and not with the stored score say the stored score is not what the candidate
scores. A forgery that repeats itself exactly on every evaluation is not caught this way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from deepphoenix.engine._config import RunConfig
from deepphoenix.engine._data import prepare_run_data
from deepphoenix.engine._events import Event, Rescore, Rescored
from deepphoenix.engine._render import Mismatch, render_source, stored_seed
from deepphoenix.engine._rundir import _stored_config
from deepphoenix.errors import RunDirError
from deepphoenix.evaluator import (
    EvalResult,
    EvalSettings,
    EvalStatus,
    Evaluator,
    inconsistency,
)
from deepphoenix.objectives import Direction, ObjectiveSpec, uses_task
from deepphoenix.status import VariantStatus
from deepphoenix.store import RungRow, RunStore, VariantRow

__all__ = ["DEFAULT_TOLERANCE", "NONDETERMINISTIC", "NOT_REPRODUCED", "REPRODUCED", "UNCHECKED",
           "Rescore", "best_scored", "rescore", "rescore_best", "rescore_run",
           "score_mismatches"]

# Relative: a CPU evaluation reproduces to the last bit with the same threads; a GPU's
# reduction order moves a loss by far less than this.
DEFAULT_TOLERANCE = 1e-3
REPRODUCED = "reproduced"
NONDETERMINISTIC = "nondeterministic"
NOT_REPRODUCED = "not reproduced"
UNCHECKED = "not re-scored"  # the evaluation itself failed (a timeout on a loaded machine)


def _close(a: float, b: float, tolerance: float) -> bool:
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=1e-12)


def _evaluate(evaluator: Evaluator, hash_: str, source: str) -> EvalResult:
    (result,) = list(evaluator.evaluate([(hash_, source)]))
    return result


def rescore(evaluator: Evaluator, hash_: str, source: str, stored: float | None,
            tolerance: float = DEFAULT_TOLERANCE) -> Rescore:
    """Evaluate `source` again (twice when the first does not reproduce `stored`)."""
    first = _evaluate(evaluator, hash_, source)
    if first.score is None:
        return Rescore(hash_, stored, (None,), UNCHECKED,
                       f"the re-score {first.status.value} at {first.stage}: {first.reason}")
    if stored is not None and _close(first.score, stored, tolerance):
        return Rescore(hash_, stored, (first.score,), REPRODUCED,
                       f"re-scored {first.score!r}, stored {stored!r}")
    second = _evaluate(evaluator, hash_, source)
    scores = (first.score, second.score)
    if second.score is None or not _close(first.score, second.score, tolerance):
        return Rescore(hash_, stored, scores, NONDETERMINISTIC,
                       f"two re-scores disagree with each other ({first.score!r}, "
                       f"{second.score!r}; stored {stored!r}): the objective does not "
                       "reproduce itself")
    return Rescore(hash_, stored, scores, NOT_REPRODUCED,
                   f"its stored score {stored!r} does not reproduce: re-scored "
                   f"{first.score!r} and {second.score!r} in processes where no other "
                   "candidate ran (a forged or rewritten score)")


def best_scored(store: RunStore, skip: str = "") -> str | None:
    """The variant with the best stored score (the earliest of equals), but `skip`."""
    direction = store.direction
    best: VariantRow | None = None
    for row in store.variants():
        if row.status != VariantStatus.SCORED or row.score is None or row.hash == skip:
            continue
        if best is None or direction.better(row.score, best.score):  # type: ignore[arg-type]
            best = row
    return None if best is None else best.hash


def rescore_best(store: RunStore, evaluator: Evaluator, best: str, seed: str,
                 source_of: Callable[[VariantRow], str],
                 emit: Callable[[Event], None], tolerance: float = DEFAULT_TOLERANCE,
                 tries: int = 3) -> str:
    """Re-score a finished run's best before it is reported. One whose score does not
    reproduce is recorded as failed at stage ``rescore`` (never the seed: it is the
    run's baseline) and the next best is re-scored, up to `tries` times; a nondeterministic
    or unchecked one is reported and kept. The best to report."""
    row = store.variant(best)
    if row is None or row.status != VariantStatus.SCORED:  # resumed after such a demotion
        best = best_scored(store) or best
    verdicts = []
    for _ in range(tries):
        row = store.variant(best)
        assert row is not None
        checked = rescore(evaluator, best, source_of(row), row.score, tolerance)
        verdicts.append(checked.to_dict())
        emit(Rescored(checked))
        if checked.verdict != NOT_REPRODUCED or best == seed:
            break
        with store.transaction():
            store.record_evaluation(EvalResult(best, EvalStatus.FAILED, "rescore",
                                               checked.reason, metrics=row.metrics))
        following = best_scored(store)
        if following is None:
            break
        best = following
    with store.transaction():
        store.set_meta("rescore", verdicts)
    return best


def score_mismatches(store: RunStore) -> tuple[int, list[Mismatch]]:
    """Check every stored score against what the database itself says about it: a
    built-in objective's score against its recorded losses (`inconsistency`), a variant's
    score against its last scored rung (asha), and a finished run's recorded best against
    the best of the stored scores. How many scores were checked, and the mismatches.
    What it cannot see: a rewrite that changes every copy alike (the score, its losses,
    its rung, the recorded best), and a user objective's score, which has no second
    copy; `rescore_run` checks those by evaluating again."""
    objective = str(store.objective.get("name", ""))
    rows = [r for r in store.variants() if r.status == VariantStatus.SCORED and r.score is not None]
    found = []
    for row in rows:
        why = inconsistency(objective, row.score, row.metrics)
        if why:
            found.append(Mismatch(row.hash, f"score: {why}", "score"))
    rungs: dict[str, RungRow] = {}
    for rung in _rungs(store):
        if rung.score is not None:
            top = rungs.get(rung.hash)
            if top is None or rung.rung > top.rung:
                rungs[rung.hash] = rung
    for row in rows:
        top = rungs.get(row.hash)
        if top is not None and top.score is not None and row.score is not None \
                and not _close(top.score, row.score, 1e-9):
            found.append(Mismatch(row.hash, f"score: {row.score!r}, but its last rung "
                                  f"recorded {top.score!r}", "score"))
    recorded = store.get_meta("best")
    if store.get_meta("status") == "finished" and isinstance(recorded, str):
        chosen = store.variant(recorded)
        leader = best_scored(store)
        if chosen is not None and leader is not None and leader != recorded:
            lead = store.variant(leader)
            assert lead is not None and lead.score is not None
            if chosen.score is None or store.direction.better(lead.score, chosen.score):
                found.append(Mismatch(leader, f"score: its stored score {lead.score!r} "
                                      f"beats the run's recorded best {recorded} "
                                      f"({chosen.score!r}), which the run would have chosen "
                                      "otherwise: a score was changed after the run",
                                      "score"))
    return len(rows), found


def _rungs(store: RunStore) -> list[RungRow]:
    try:
        return store.rungs()
    except Exception:  # a run from before the rungs table: nothing to compare
        return []


def rescore_run(run_dir: Path, top: int, tolerance: float = DEFAULT_TOLERANCE,
                on_done: Callable[[Rescore], None] | None = None) -> list[Rescore]:
    """Evaluate the `top` best-scored variants of the run in `run_dir` again, in a fresh
    sandbox worker with the run's own settings (threads, device, memory, data), each from
    its source rendered from the seed and its recorded values."""
    from deepphoenix.engine._rundir import stored_project
    from deepphoenix.engine._settings import eval_settings, lone_evaluator
    from deepphoenix.executor import LocalExecutor

    run_dir = Path(run_dir).resolve()
    with RunStore.open(run_dir) as store:
        config: RunConfig = _stored_config(store.get_meta("config"))
        objective = ObjectiveSpec.from_dict(store.objective)
        seed = stored_seed(store)
        project, paths = stored_project(store.get_meta("project"))
        direction: Direction = store.direction
        rows = sorted((r for r in store.variants() if r.status == VariantStatus.SCORED
                       and r.score is not None),
                      key=lambda r: direction.sign * float(r.score))  # type: ignore[arg-type]
        chosen = [(r.hash, render_source(seed, r), r.score) for r in rows[:top]]
    data_dir = run_dir / "data"
    if uses_task(config.objective) and not (data_dir / "data.json").exists() \
            and not any(data_dir.glob("*.json")):
        raise RunDirError(f"{run_dir}: the run has no data yet, so nothing can be re-scored")
    data = prepare_run_data(data_dir, config, seed, refinement=False)
    settings: EvalSettings = eval_settings(config, objective, data, project, paths)
    found = []
    with LocalExecutor(lone_evaluator(config, objective, seed.text, hidden=(str(run_dir),),
                                      readable=(str(data_dir),))) as executor:
        evaluator = Evaluator(executor, settings)
        for hash_, source, stored in chosen:
            checked = rescore(evaluator, hash_, source, stored, tolerance)
            found.append(checked)
            if on_done is not None:
                on_done(checked)
    return found
