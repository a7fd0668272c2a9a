"""The self-reprogramming loop (the paper's Algorithm 1) over a run directory.

::

    for episode in 1..E:
        model ← the model the current source defines, fresh init     (t5 proposer)
        train it on the refinement dataset; keep its loss curve
        for batch in 1..B:
            candidates ← model.generate(parent) × C, grounded on the parent
            score each new valid candidate by the few-shot run (cached by hash)
            best ← the strategy's choice among {best, candidates}
        source ← best

Everything is recorded in the run database as it happens. Resuming replays the loop:
finished batches and episodes are read back, a batch whose candidates were already
proposed reuses them, a variant already evaluated is never evaluated again, and every
random draw comes from a seed derived from the run seed and the (episode, batch), so a
resumed run ends where an uninterrupted one would.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import random
import shutil
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from deepphoenix.errors import ConfigError, DeepPhoenixError, RunDirError, WorkerError
from deepphoenix.evaluator import EvalSettings, Evaluator
from deepphoenix.grammar import Grammar, grammar_file, parse_grammar, read_grammar_text
from deepphoenix.mutator import Program, parse_program, read_source, resolve_grammar
from deepphoenix.outcome import Outcome
from deepphoenix.proposers import (
    Proposal,
    RandomProposer,
    draw_distinct,
    make_dataset,
    write_pairs,
)
from deepphoenix.proposers._t5 import (
    ProposerData,
    SampleSettings,
    T5Proposer,
    TrainSettings,
    prepare_data,
)
from deepphoenix.sandbox import Worker, WorkerPool, WorkerSettings
from deepphoenix.search._config import RunConfig
from deepphoenix.search._strategy import Scored, get_strategy
from deepphoenix.seeds import seed_names, seed_source
from deepphoenix.store import RunStore
from deepphoenix.store_io import write_text_atomic

__all__ = ["Event", "Run", "RunSummary", "derive_seed", "load_seed_text"]


def derive_seed(seed: int, *parts: object) -> int:
    """A 31-bit seed for one purpose of a run (data, training, a batch's proposals)."""
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


def load_seed_text(spec: str) -> str:
    """A built-in seed by name, or a source file."""
    if spec in seed_names():
        return seed_source(spec)
    return read_source(spec)


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened in a run, for progress displays and `--json` output."""

    kind: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunSummary:
    run_dir: Path
    seed_hash: str
    seed_loss: float | None
    best_hash: str
    best_loss: float | None
    evaluations: int
    seconds: float
    best_path: Path

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "seed_hash": self.seed_hash,
                "seed_loss": self.seed_loss, "best_hash": self.best_hash,
                "best_loss": self.best_loss, "evaluations": self.evaluations,
                "seconds": self.seconds, "best_path": str(self.best_path)}


class _EpisodeProposer(Protocol):
    """Per episode: `begin_episode` gets the training report stored by an earlier start of
    the run (None if there is none) and returns the report to store, or None."""

    name: str

    def begin_episode(self, episode: int, program: Program, seed: int,
                      stored: dict[str, Any] | None) -> dict[str, Any] | None:
        ...

    def propose(self, parent: Program, n: int, seed: int,
                exclude: Collection[str] = ()) -> list[Proposal]:
        ...

    def close(self) -> None:
        ...


class _RandomAdapter:
    """The grammar's random refinements (the baseline); no training stage. Slots that
    repeat a candidate of their batch are drawn again under the same rule as the learned
    proposer (`rounds` draws in all), so the two compare at an equal budget."""

    name = "random"

    def __init__(self, rounds: int) -> None:
        self.proposer = RandomProposer(max_edits=1)
        self.rounds = rounds

    def begin_episode(self, episode: int, program: Program, seed: int,
                      stored: dict[str, Any] | None) -> dict[str, Any] | None:
        return None

    def propose(self, parent: Program, n: int, seed: int,
                exclude: Collection[str] = ()) -> list[Proposal]:
        rng = random.Random(seed)
        return draw_distinct(lambda _round, k: self.proposer.propose(parent, k, rng), n,
                             self.rounds, exclude)

    def close(self) -> None:
        return None


class _T5Adapter:
    """The source's own T5: trained each episode (or loaded from that episode's
    checkpoint when resuming), then sampled.

    The model is whatever the evolving source defines, so it can fail to train or to
    sample (out of memory, a library limit). Then the failure is recorded and that
    episode's (or batch's) candidates come from the grammar's random refinements, named
    ``random-fallback`` in the lineage, and the run goes on.
    """

    name = "t5"
    FALLBACK = "random-fallback"

    def __init__(self, run_dir: Path, config: RunConfig, data: ProposerData,
                 settings: WorkerSettings, emit: Callable[[Event], None]) -> None:
        self.run_dir = run_dir
        self.config = config
        self.data = data
        self.worker = Worker(settings, name="proposer")
        self.emit = emit
        self.sampling = SampleSettings(temperature=config.temperature, top_k=config.top_k,
                                       top_p=config.top_p, constrained=config.constrained,
                                       rounds=config.draw_rounds)
        self.proposer: T5Proposer | None = None
        self.fallback = _RandomAdapter(config.draw_rounds)
        self.failure = ""

    def begin_episode(self, episode: int, program: Program, seed: int,
                      stored: dict[str, Any] | None) -> dict[str, Any] | None:
        folder = self.run_dir / "episodes" / str(episode) / "model"
        if stored is not None and "failed" in stored:
            # Training failed before the interruption: the episode's earlier batches used
            # the fallback, so the rest do too (the same run as an uninterrupted one).
            self._fall_back(episode, str(stored["failed"]))
            return stored
        if (folder / "proposer.json").exists():
            self.name, self.failure = "t5", ""
            self.proposer = T5Proposer.load(folder, self.worker, self.sampling,
                                            self.config.device)
            # Trained before the interruption; the curve may not have reached the database.
            return stored if stored is not None else _report_from_checkpoint(folder)
        if folder.exists():
            shutil.rmtree(folder)  # half-written by an interrupted run
        c = self.config
        settings = TrainSettings(
            epochs=c.train_epochs, batch_size=c.train_batch_size, lr=c.train_lr,
            samples=c.train_samples, seed=seed, device=c.device,
            max_seconds=c.train_max_seconds,
        )

        def progress(message: dict[str, Any]) -> None:
            self.emit(Event("training", {"episode": episode, "step": message["step"],
                                         "total": message["total"], "loss": message["loss"]}))

        self.name, self.failure = "t5", ""
        try:
            self.proposer, report = T5Proposer.train(
                program.text, self.data, settings, self.worker, out=folder,
                sampling=self.sampling, on_progress=progress, timeout=c.train_timeout,
            )
        except WorkerError as exc:
            self._fall_back(episode, str(exc))
            return {"failed": str(exc), "losses": []}
        return report

    def _fall_back(self, episode: int, reason: str) -> None:
        self.proposer, self.name, self.failure = None, self.FALLBACK, reason
        self.emit(Event("proposer_failed", {"episode": episode, "reason": reason}))

    def propose(self, parent: Program, n: int, seed: int,
                exclude: Collection[str] = ()) -> list[Proposal]:
        if self.proposer is not None:
            try:
                self.name = "t5"
                return self.proposer.propose(parent, n, seed, exclude)
            except WorkerError as exc:
                self.name, self.failure = self.FALLBACK, str(exc)
                self.emit(Event("proposer_failed", {"reason": str(exc)}))
        self.name = self.FALLBACK
        return self.fallback.propose(parent, n, seed, exclude)

    def close(self) -> None:
        self.worker.close()


def _report_from_checkpoint(folder: Path) -> dict[str, Any]:
    """The training report of a saved proposer (`proposer.json` and `losses.json`)."""
    meta = json.loads((folder / "proposer.json").read_text())
    losses = json.loads((folder / "losses.json").read_text())
    keys = ("params", "mean_loss", "final_loss", "steps", "seconds", "device", "stopped")
    return {**{k: meta[k] for k in keys if k in meta}, "losses": losses,
            "sum_loss": sum(losses)}


def _stored_config(data: Any) -> RunConfig:
    """The config a run was created with. Keys added to `RunConfig` since then take the
    value that reproduces the old behaviour, not today's default."""
    if not isinstance(data, dict):
        raise RunDirError("the run database holds no run config")
    return RunConfig.from_dict({**_LEGACY_DEFAULTS, **data})


# RunConfig fields added after runs were first written, with the behaviour before them.
_LEGACY_DEFAULTS: dict[str, Any] = {"draw_rounds": 1}


def _grammar_file_text(spec: str) -> str | None:
    """The TOML text of a grammar given as a file, read once and kept in the run so that
    editing the file later cannot change a resumed run; None for built-in, registered
    and inferred grammars."""
    path = grammar_file(spec) if spec != "infer" else None
    return read_grammar_text(path) if path is not None else None


def _stored_grammar(spec: str, seed_text: str, toml_text: str | None) -> Grammar:
    if toml_text is not None:
        return parse_grammar(toml_text, origin=spec, default_name=Path(spec).stem)
    return resolve_grammar(spec, seed_text, "seed")


def _environment(config: RunConfig) -> dict[str, Any]:
    """What a score or a hash may depend on beyond the config."""
    return {"python": ".".join(platform.python_version_tuple()[:2]),
            "threads": config.worker_threads()}


class _RunLock:
    """An exclusive lock on a run directory for the life of a `Run` (released by the OS
    when the process dies, so a `kill -9` never leaves a stale lock)."""

    NAME = ".lock"

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    @classmethod
    def acquire(cls, run_dir: Path, create: bool) -> _RunLock:
        if create:
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RunDirError(f"cannot create run directory {run_dir}: "
                                  f"{exc.strerror or exc}") from None
        elif not run_dir.is_dir():
            raise RunDirError(f"{run_dir}: no such run directory")
        try:
            handle = open(run_dir / cls.NAME, "a+")  # noqa: SIM115 - held until release
        except OSError as exc:
            raise RunDirError(f"cannot lock run directory {run_dir}: "
                              f"{exc.strerror or exc}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunDirError(f"{run_dir} is in use by a running deepphoenix ({holder}); "
                              "wait for it or stop it first") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        return cls(handle)

    def release(self) -> None:
        self.handle.close()


class Run:
    """One run directory: create it or resume it, then `execute`."""

    def __init__(self, run_dir: Path, config: RunConfig | None = None, *, resume: bool = False,
                 on_event: Callable[[Event], None] | None = None) -> None:
        # Absolute, so that a resume from another working directory finds everything.
        self.run_dir = Path(run_dir).resolve()
        self.on_event = on_event
        self._lock: _RunLock | None = None
        self.pending_warnings: list[str] = []
        if resume:
            self._lock = _RunLock.acquire(self.run_dir, create=False)
            try:
                self.store = RunStore.open(self.run_dir)
                self.config = _stored_config(self.store.get_meta("config"))
                seed_text = self.store.get_meta("seed_text")
                if not isinstance(seed_text, str):
                    raise RunDirError(f"{self.run_dir}: the run was stopped before its seed "
                                      "was stored; start a new run")
                self.seed_text = seed_text
                self.grammar = _stored_grammar(self.config.grammar, seed_text,
                                               self.store.get_meta("grammar_toml"))
                self.seed_program = parse_program(self.seed_text, self.grammar, "seed")
            except BaseException:
                self._lock.release()
                raise
            self._check_environment()
        else:
            if config is None:
                raise ConfigError("a new run needs a config")
            config.validate()
            # Everything that can be wrong with the input is found before anything is
            # written: a bad grammar or seed leaves no run directory behind.
            self.seed_text = load_seed_text(config.seed_source)
            self.config = config
            grammar_toml = _grammar_file_text(config.grammar)
            self.grammar = _stored_grammar(config.grammar, self.seed_text, grammar_toml)
            self.seed_program = parse_program(self.seed_text, self.grammar, "seed")
            self._lock = _RunLock.acquire(self.run_dir, create=True)
            try:
                self.store = RunStore.create(self.run_dir, config.to_dict(), {
                    "seed_text": self.seed_text, "grammar_toml": grammar_toml,
                    "environment": _environment(config)})
            except BaseException:
                self._lock.release()
                raise
            write_text_atomic(self.run_dir / "config.json",
                              json.dumps(config.to_dict(), indent=2) + "\n")
        self.strategy = get_strategy(self.config.strategy)

    def emit(self, kind: str, **fields: Any) -> None:
        if self.on_event is not None:
            self.on_event(Event(kind, fields))

    # -- data ----------------------------------------------------------------------------
    def _data(self) -> ProposerData:
        folder = self.run_dir / "data"
        meta = folder / "data.json"
        if meta.exists():
            # The files live next to data.json whatever the paths stored (older runs
            # stored them relative to the working directory of the first start).
            stored = json.loads(meta.read_text())
            return ProposerData.from_dict({
                **stored, "tokenizer_path": folder / Path(stored["tokenizer_path"]).name,
                "tokens_path": folder / Path(stored["tokens_path"]).name})
        c = self.config
        pairs = make_dataset(self.seed_program, c.dataset_size, derive_seed(c.seed, "data"),
                             c.format)
        write_pairs(pairs, folder / "pairs.jsonl", c.format)
        data = prepare_data(pairs, c.format, folder, c.vocab_size, c.pre_tokenizer)
        stored = {**data.to_dict(), "tokenizer_path": data.tokenizer_path.name,
                  "tokens_path": data.tokens_path.name}  # relative to data/
        write_text_atomic(meta, json.dumps(stored, indent=2))
        return data

    # -- the loop ------------------------------------------------------------------------
    def execute(self) -> RunSummary:
        began = time.monotonic()
        c = self.config
        self.emit("run", run_dir=str(self.run_dir), config=c.to_dict(),
                  resumed=self.store.evaluations_done() > 0)
        for message in self.pending_warnings:
            self.emit("warning", message=message)
        data = self._data()
        self.emit("data", pairs=data.pairs, vocab_size=data.vocab_size,
                  mean_input_tokens=data.mean_input_tokens)
        settings = WorkerSettings(threads=c.worker_threads(), memory_limit=c.memory_limit_bytes(),
                                  device=c.device)
        pool = WorkerPool(c.workers, settings, log_dir=self.run_dir / "logs")
        proposer: _EpisodeProposer
        if c.proposer == "t5":
            proposer_settings = WorkerSettings(
                threads=max(1, c.worker_threads() * c.workers), memory_limit=None,
                device=c.device, log_path=self.run_dir / "logs" / "proposer.log")
            proposer = _T5Adapter(self.run_dir, c, data, proposer_settings, self.emit_event)
        else:
            proposer = _RandomAdapter(self.config.draw_rounds)
        evaluator = Evaluator(pool, data.tokens_path, data.vocab_size, EvalSettings(
            samples=c.fewshot_samples, batch_size=c.fewshot_batch_size, lr=c.fewshot_lr,
            seed=derive_seed(c.seed, "fewshot"), device=c.device, timeout=c.timeout))
        try:
            best = self._loop(proposer, evaluator)
        finally:
            proposer.close()
            pool.close()
        summary = self._finish(best, time.monotonic() - began)
        self.emit("done", **summary.to_dict())
        return summary

    def emit_event(self, event: Event) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def _score(self, evaluator: Evaluator, hashes: list[str], episode: int, batch: int) -> None:
        pending = []
        for hash_ in dict.fromkeys(hashes):
            row = self.store.variant(hash_)
            assert row is not None
            if not row.done:
                pending.append((hash_, row.source))
        self.emit("scoring", episode=episode, batch=batch, count=len(pending))
        for result in evaluator.evaluate(pending):
            self.store.record_evaluation(result)
            self.emit("evaluated", episode=episode, batch=batch, hash=result.hash,
                      status=result.status.value, stage=result.stage, reason=result.reason,
                      loss=result.score, params=result.metrics.get("params"),
                      seconds=result.metrics.get("wall_seconds"),
                      done=self.store.evaluations_done())

    def _loss(self, hash_: str) -> float | None:
        row = self.store.variant(hash_)
        return None if row is None or row.status != "scored" else row.mean_loss

    def _loop(self, proposer: _EpisodeProposer, evaluator: Evaluator) -> str:
        c = self.config
        seed_hash = self.seed_program.hash
        with self.store.transaction():
            self.store.add_variant(seed_hash, self.seed_text, self.seed_program.values, 0)
        self._score(evaluator, [seed_hash], 0, 0)
        seed_row = self.store.variant(seed_hash)
        assert seed_row is not None
        if seed_row.status != "scored":
            raise DeepPhoenixError(f"the seed itself fails at the {seed_row.stage} stage: "
                                   f"{seed_row.reason}")
        self.emit("seed", hash=seed_hash, loss=seed_row.mean_loss,
                  params=seed_row.metrics.get("params"))
        best = seed_hash
        for episode in range(1, c.episodes + 1):
            record = self.store.episode(episode)
            if record is not None and record["finished_at"] is not None:
                best = record["best"]
                continue
            if record is not None:
                best = record["source_hash"]
            train_seed = derive_seed(c.seed, "train", episode)
            self.store.start_episode(episode, best, train_seed)
            program = parse_program(self._source(best), self.grammar)
            self.emit("episode", episode=episode, episodes=c.episodes, source=best,
                      loss=self._loss(best))
            stored = (record["training"] if record is not None
                      and record["trained_at"] is not None else None)
            report = proposer.begin_episode(episode, program, train_seed, stored)
            if report is not None and stored is None:
                self.store.record_training(episode, report)
            if report is not None and stored is None and "failed" not in report:
                self.emit("trained", episode=episode, steps=report["steps"],
                          final_loss=report["final_loss"], seconds=report["seconds"],
                          params=report["params"])
            for batch in range(1, c.batches + 1):
                best = self._batch(proposer, evaluator, episode, batch, best)
            self.store.finish_episode(episode, best)
            self.emit("episode_done", episode=episode, best=best, loss=self._loss(best))
        return best

    def _source(self, hash_: str) -> str:
        row = self.store.variant(hash_)
        if row is None:
            raise RunDirError(f"variant {hash_} is missing from the run database")
        return row.source

    def _batch(self, proposer: _EpisodeProposer, evaluator: Evaluator, episode: int,
               batch: int, best: str) -> str:
        c = self.config
        record = self.store.batch(episode, batch)
        if record is not None and record["finished_at"] is not None:
            return str(record["best"])
        parent = self.strategy.parent(best, self.seed_program.hash)
        seed = derive_seed(c.seed, "propose", episode, batch)
        self.store.start_batch(episode, batch, parent, seed)
        self.emit("batch", episode=episode, batch=batch, batches=c.batches, parent=parent)
        attempts = self.store.attempts(episode, batch)
        if not attempts:
            parent_program = parse_program(self._source(parent), self.grammar)
            began = time.monotonic()
            # Every slot goes to a variant this run has not met: a repeat would spend an
            # evaluation slot on a cached score (and never win a greedy step).
            proposals = proposer.propose(parent_program, c.candidates, seed,
                                         self.store.variant_hashes())
            self._record_proposals(episode, batch, parent, proposer.name, proposals)
            self.store.set_batch_proposal_time(episode, batch, time.monotonic() - began)
            attempts = self.store.attempts(episode, batch)
        counts: dict[str, int] = {}
        for attempt in attempts:
            counts[attempt.outcome] = counts.get(attempt.outcome, 0) + 1
        self.emit("proposed", episode=episode, batch=batch, outcomes=counts)
        valid = [a.child for a in attempts if a.outcome == Outcome.OK.value and a.child]
        self._score(evaluator, valid, episode, batch)
        chosen = self.strategy.select(
            Scored(best, self._loss(best)),
            [Scored(h, self._loss(h)) for h in dict.fromkeys(valid)],
        )
        self.store.finish_batch(episode, batch, chosen.hash)
        self.emit("batch_done", episode=episode, batch=batch, best=chosen.hash,
                  loss=chosen.loss, improved=chosen.hash != best)
        return chosen.hash

    def _record_proposals(self, episode: int, batch: int, parent: str, proposer: str,
                          proposals: list[Proposal]) -> None:
        rows = []
        with self.store.transaction():
            for slot, proposal in enumerate(proposals):
                m = proposal.mutation
                child = m.variant.hash if m.variant is not None else None
                if m.variant is not None and m.outcome in (Outcome.OK, Outcome.OUT_OF_DOMAIN,
                                                           Outcome.INVARIANT):
                    status = "pending" if m.ok else "rejected"
                    self.store.add_variant(
                        m.variant.hash, m.variant.source, dict(m.variant.values), episode,
                        status=status, stage="" if m.ok else "static",
                        reason="" if m.ok else f"{m.outcome.value}: {m.reason}")
                if m.outcome is Outcome.NO_OP:
                    child = None
                rows.append({
                    "episode": episode, "batch": batch, "slot": slot, "parent": parent,
                    "child": child, "proposer": proposer, "outcome": m.outcome.value,
                    "reason": m.reason,
                    "edits": [e.to_dict() for e in m.variant.changes] if m.variant else [],
                    "raw_text": proposal.text,
                })
            self.store.add_attempts(rows)

    def _finish(self, best: str, seconds: float) -> RunSummary:
        best_row = self.store.variant(best)
        assert best_row is not None
        best_path = self.run_dir / "best.py"
        write_text_atomic(best_path, best_row.source)
        summary = RunSummary(
            run_dir=self.run_dir, seed_hash=self.seed_program.hash,
            seed_loss=self._loss(self.seed_program.hash), best_hash=best,
            best_loss=best_row.mean_loss, evaluations=self.store.evaluations_done(),
            seconds=seconds, best_path=best_path,
        )
        with self.store.transaction():
            self.store.set_meta("status", "finished")
            self.store.set_meta("best", best)
            self.store.set_meta("finished_at", time.time())
        write_text_atomic(self.run_dir / "summary.json",
                          json.dumps(summary.to_dict(), indent=2) + "\n")
        return summary

    def close(self) -> None:
        self.store.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _check_environment(self) -> None:
        """Warn when a resume runs where losses or hashes may come out differently."""
        before = self.store.get_meta("environment") or {}
        now = _environment(self.config)
        changed = [f"{k} {before[k]} -> {now[k]}" for k in sorted(now)
                   if k in before and before[k] != now[k]]
        if changed:
            self.pending_warnings.append(
                "resuming in a different environment (" + ", ".join(changed) + "): scores "
                "of new evaluations may not match an uninterrupted run exactly")
