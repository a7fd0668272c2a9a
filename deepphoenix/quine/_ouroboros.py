"""The ouroboros: a source quine trained in a sandbox worker prints a file, and that file
becomes the next generation only after it is grounded against the trusted parent.

Each generation: the parent's text (trusted: the seed, or an earlier parent with literal
edits) runs in a worker (`generation_job`: its own ``train()``, then ``replicate``); the
printed text comes back as data and goes through `ground`, which parses it (executing
nothing) and diffs it against the parent. Outcomes:

- ``ok``: it differs only at sites: the parent with those edits is the next generation;
- ``no-op``: it says the same at every site (a fixed point, possibly with a wrong
  comment): the parent itself is the next generation, trained again from a new seed;
- ``unparseable``, ``ungrounded`` (a change outside the sites), ``out-of-domain``,
  ``invariant``, or a failed training: recorded, and the chain stops.

Nothing the model prints is ever executed: the next generation's text is the trusted
parent's with literals spliced in. Every generation lands in a run directory like
``deepphoenix run``'s (`deepphoenix lineage show` reads it): generation g is episode g,
its program a variant with its fidelity (score: 1 - character accuracy; metrics:
``char_accuracy``, ``exact_prefix``, ``exact``), its print an attempt with the grounding
outcome and the raw text; the per-generation list is also stored as ``ouroboros`` in the
run's meta.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from deepphoenix.engine import RunConfig
from deepphoenix.engine._rundir import RunDir, derive_seed
from deepphoenix.errors import ConfigError
from deepphoenix.evaluator import EvalResult, EvalStatus
from deepphoenix.executor import ExecutorSettings, LocalExecutor
from deepphoenix.mutator import Program, ground, parse_program
from deepphoenix.outcome import Outcome
from deepphoenix.sandbox import GenerationJob, JobStatus, WorkerSettings
from deepphoenix.status import VariantStatus

__all__ = ["Generation", "ouroboros"]

_MAX_GENERATIONS = 1000


@dataclass(frozen=True, slots=True)
class Generation:
    """One generation of the chain: its program, how faithfully it printed itself, and
    what became of the print."""

    number: int  # 1, 2, …
    hash: str  # the program that was trained
    status: str  # scored | failed
    fidelity: float | None  # character accuracy of the print against the program's text
    exact: bool  # the print is the program's text, byte for byte
    outcome: str  # the print's grounding: ok | no-op | unparseable | ungrounded | … ("": failed)
    reason: str  # why the chain stops here, or the grounding's reason
    child: str | None  # the next generation's hash (None: the chain stops)
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ouroboros(run_dir: Path, source: str, generations: int, *, grammar: str = "quine",
              seed: int = 0, timeout: float = 600.0, device: str = "auto", threads: int = 0,
              on_generation: Callable[[Generation], None] | None = None) -> list[Generation]:
    """Run up to `generations` generations from the quine `source` (a built-in seed name
    or a file) into the new run directory `run_dir`; the generations run. `threads`:
    torch threads of the worker (0: every core)."""
    if isinstance(generations, bool) or not isinstance(generations, int) or not (
            1 <= generations <= _MAX_GENERATIONS):
        raise ConfigError(f"Expected 1 <= int <= {_MAX_GENERATIONS} but got "
                          f"generations={generations!r}")
    config = RunConfig(preset="quine-cpu", seed_source=source, grammar=grammar,
                       objective="self-replication", proposer="random", episodes=generations,
                       batches=1, candidates=1, seed=seed, timeout=timeout, device=device,
                       threads=threads)
    run = RunDir.create(Path(run_dir), config)
    done: list[Generation] = []
    try:
        store = run.store
        store.set_meta("ouroboros", [])
        parent: Program = run.parse(run.seed_text)  # one file: no --with here
        with store.transaction():
            store.add_variant(parent.hash, parent.text, parent.values, 0)
        settings = ExecutorSettings(workers=1, worker=WorkerSettings(
            device=device, memory_limit=config.memory_limit_bytes(),
            threads=config.worker_threads()))
        with LocalExecutor(settings) as executor:
            for number in range(1, generations + 1):
                generation, child = _generation(run, executor, parent, number)
                done.append(generation)
                with store.transaction():
                    store.set_meta("ouroboros", [g.to_dict() for g in done])
                if on_generation is not None:
                    on_generation(generation)
                if child is None:
                    break
                parent = child
        store.set_meta("status", "finished")
        store.set_meta("best", parent.hash)
        store.set_meta("finished_at", time.time())
    finally:
        run.close()
    return done


def _generation(run: RunDir, executor: LocalExecutor, parent: Program,
                number: int) -> tuple[Generation, Program | None]:
    store, config = run.store, run.config
    seed = derive_seed(config.seed, "generation", number)
    store.start_episode(number, parent.hash, seed)
    store.start_batch(number, 1, parent.hash, seed)
    began = time.monotonic()
    request = GenerationJob(source=parent.text, seed=seed, timeout=config.timeout)
    ((_, job),) = list(executor.run_all([(parent.hash, request, config.timeout)]))
    seconds = time.monotonic() - began
    value = job.value if job.status is JobStatus.OK and isinstance(job.value, dict) else {
        "status": VariantStatus.FAILED.value, "stage": "objective",
        "reason": f"{job.status.value}: {job.error}", "traceback": job.traceback or ""}
    printed = value.pop("printed", None)
    result = EvalResult.from_dict({**value, "hash": parent.hash})
    store.record_evaluation(result)
    if result.status is not EvalStatus.SCORED or not isinstance(printed, str):
        generation = Generation(number, parent.hash, result.status.value, None, False, "",
                                f"generation {number} failed at {result.stage}: "
                                f"{result.reason}", None, seconds)
        _finish(run, number, parent.hash, None, generation)
        return generation, None
    mutation = ground(parent, printed)
    child: Program | None = None
    if mutation.outcome is Outcome.NO_OP:
        child = parent  # a fixed point: the trusted parent, trained again
    elif mutation.ok and mutation.variant is not None:
        child = parse_program(mutation.variant.source, parent.grammar)
    fidelity = float(result.metrics.get("char_accuracy", 0.0))
    generation = Generation(number, parent.hash, VariantStatus.SCORED, fidelity,
                            bool(result.metrics.get("exact")), mutation.outcome.value,
                            mutation.reason, None if child is None else child.hash, seconds)
    _finish(run, number, parent.hash, printed, generation, mutation)
    return generation, child


def _finish(run: RunDir, number: int, parent: str, printed: str | None,
            generation: Generation, mutation: Any = None) -> None:
    store = run.store
    with store.transaction():
        if mutation is not None and mutation.ok and mutation.variant is not None:
            variant = mutation.variant
            store.add_variant(variant.hash, variant.source, dict(variant.values), number)
        store.add_attempts([{
            "episode": number, "batch": 1, "slot": 0, "parent": parent,
            "child": generation.child if generation.child != parent else None,
            "proposer": "ouroboros", "outcome": generation.outcome or "failed",
            "reason": generation.reason,
            "edits": ([e.to_dict() for e in mutation.variant.changes]
                      if mutation is not None and mutation.variant is not None else []),
            "raw_text": printed or "",
        }])
        best = generation.child or parent
        store.finish_batch(number, 1, best)
        store.finish_episode(number, best)
