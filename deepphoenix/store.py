"""The run database: one SQLite file (WAL) per run directory that records every attempt.

Tables:

- ``meta``: schema version, the resolved run config, the objective (name, direction and,
  for a user objective, its text; for a command, its metric), a project run's folder and
  file paths, status, timestamps.
- ``variants``: every distinct program seen, by canonical hash: its source (a candidate of
  several files: the bundle's text, each file after a header line), site values,
  status (``pending`` → ``scored`` | ``failed``, or ``rejected`` at the static stage),
  the stage and reason of a failure, the traceback when it raised, the score (in the
  objective's direction) and every metric (standard JSON: a non-finite number is the
  string "NaN", "Infinity" or "-Infinity").
- ``attempts``: every candidate a proposer produced (episode, batch, slot), its parent,
  the variant it grounded to (none when the text was unparseable or ungrounded), the
  outcome, the edits, and the raw text. These are the lineage graph's edges. A candidate
  drawn again because the one before it broke a constraint names that one's slot
  (``redraw_of``; new slots are numbered after the batch's first draw).
- ``checks`` (``--max-params``, ``--constraint``): each variant checked before it could
  take an evaluation slot: the verdict (``pass``, ``reject``, ``error``, ``unknown``), the
  rule that said so, its reason and the parameter count. A variant the check blocked is
  also ``rejected`` at stage ``constraint`` in ``variants``, never evaluated.
- ``batches`` and ``episodes``: the loop's progress, the RNG seed each batch drew from,
  the best variant after each, the training curve of each episode's model.
- ``rungs`` (``--strategy async``, ``--fidelity asha``): every evaluation job, by variant
  and rung: the budget it had (rows or steps), ``running`` until it finishes, then its
  status, score and metrics. A variant stopped early has status ``pruned`` and stage
  ``rung K``; its ``score`` stays empty (only full evaluations are compared).

Every JSON column is written one way (`store_rows.encode_json`: standard JSON, as the
metrics above) and the batches, episodes and rungs come back as records
(`store_rows`: `BatchRow`, `EpisodeRow`, `RungRow`).

Nothing is ever evicted. Each evaluation is committed as it completes, so a crash, a
``kill -9`` or Ctrl-C loses no finished work.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from deepphoenix.errors import RunDirError
from deepphoenix.evaluator import CheckResult, EvalResult
from deepphoenix.objectives import Direction
from deepphoenix.status import RungStatus, VariantStatus, sql_list
from deepphoenix.store_rows import (
    AttemptRow,
    BatchRow,
    EpisodeRow,
    RungRow,
    VariantRow,
    decode_json,
    encode_json,
    row_of,
)
from deepphoenix.store_schema import RUNGS_SCHEMA as _RUNGS_SCHEMA
from deepphoenix.store_schema import SCHEMA as _SCHEMA

__all__ = ["DB_NAME", "SCHEMA_VERSION", "AttemptRow", "BatchRow", "EpisodeRow", "RunStore",
           "RungRow", "VariantRow"]

DB_NAME = "run.sqlite"
SCHEMA_VERSION = 2
# Schema 1 (before objectives): no `score` column; the score was `mean_loss`, minimized,
# under the fewshot objective. Such a database is read as it is, and upgraded in place
# when a run is resumed from it.
_LEGACY_OBJECTIVE = {"name": "fewshot", "direction": Direction.MINIMIZE.value, "function": "",
                     "text": "", "origin": ""}



class _Connection(sqlite3.Connection):
    """A connection whose "disk is full" says which database and what to do (SQLite's own
    message names neither)."""

    run_path: Path | None = None

    def _full(self, exc: sqlite3.OperationalError) -> BaseException:
        if "full" in str(exc).lower():
            return RunDirError(f"{self.run_path}: the disk is full ({exc}); every finished "
                               "evaluation is kept: free some space and resume with --resume")
        return exc

    def execute(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
        try:
            return super().execute(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            raise self._full(exc) from None

    def executemany(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
        try:
            return super().executemany(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            raise self._full(exc) from None


class RunStore:
    """The SQLite database of one run directory."""

    def __init__(self, path: Path, create: bool = False, write: bool = True) -> None:
        self.path = Path(path)
        try:
            self.db = self._connect(write)
            if write:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
            if create:
                self.db.executescript(_SCHEMA)
            self.db.execute("SELECT value FROM meta LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            raise RunDirError(f"{self.path}: not a deepphoenix run database ({exc})") from None
        self.db.row_factory = sqlite3.Row
        columns = {r["name"] for r in self.db.execute("PRAGMA table_info(variants)")}
        # Schema 1 has no score column: its score is the few-shot mean loss.
        self._score_column = "score" if "score" in columns else "mean_loss"

    def _connect(self, write: bool) -> sqlite3.Connection:
        if write:
            writer = sqlite3.connect(str(self.path), timeout=30, isolation_level=None,
                                     factory=_Connection)
            writer.run_path = self.path
            return writer
        uri = f"file:{quote(str(self.path.resolve()))}"
        try:
            db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30,
                                 isolation_level=None)
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            return db
        except sqlite3.OperationalError:
            # A read-only directory where SQLite cannot make the WAL's shared-memory file:
            # nothing can be writing there, so read the file as it is.
            return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None)

    # -- lifecycle -----------------------------------------------------------------------
    @classmethod
    def create(cls, run_dir: Path, config: dict[str, Any],
               meta: dict[str, Any] | None = None) -> RunStore:
        """A new run database holding `config` and `meta`, written in one transaction;
        `RunDirError` if one is already there."""
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"cannot create run directory {run_dir}: "
                              f"{exc.strerror or exc}") from None
        path = run_dir / DB_NAME
        if path.exists():
            raise RunDirError(f"{run_dir} already holds a run; pass --resume to continue it "
                              "or choose another --run-dir")
        store = cls(path, create=True)
        with store.transaction():
            store.set_meta("schema_version", SCHEMA_VERSION)
            store.set_meta("config", config)
            store.set_meta("status", "running")
            store.set_meta("created_at", time.time())
            for key, value in (meta or {}).items():
                store.set_meta(key, value)
        return store

    @classmethod
    def open(cls, run_dir: Path, write: bool = False) -> RunStore:
        """An existing run database, read-only unless `write` (so a run directory on a
        read-only mount can be inspected); `RunDirError` if there is none or it is too
        new."""
        path = Path(run_dir) / DB_NAME
        if not Path(run_dir).is_dir():
            raise RunDirError(f"{run_dir}: no such run directory")
        if not path.exists():
            raise RunDirError(f"{run_dir}: not a deepphoenix run directory (no {DB_NAME})")
        store = cls(path, write=write)
        version = store.get_meta("schema_version")
        if version is None:
            store.close()
            wal = path.with_name(path.name + "-wal")
            raise RunDirError(f"{path} holds no run (its schema version is missing): the run "
                              f"was killed before its first commit, or its write-ahead log "
                              f"{wal.name} was deleted after a crash; start a new run")
        if version not in (1, SCHEMA_VERSION):
            store.close()
            raise RunDirError(f"{run_dir} was written with run-database schema {version}; this "
                              f"deepphoenix reads schemas 1 and {SCHEMA_VERSION}")
        return store

    def upgrade(self) -> None:
        """Bring a schema-1 database to this schema (before a resume writes to it): the
        score column, filled from the few-shot mean loss, and the fewshot objective; and
        add the tables and columns that came later in schema 2."""
        if self.get_meta("schema_version") == SCHEMA_VERSION:
            self._add_later_parts()
            return
        with self.transaction():
            self.db.execute("ALTER TABLE variants ADD COLUMN score REAL")
            self.db.execute("UPDATE variants SET score = mean_loss")
            if self.get_meta("objective") is None:
                self.set_meta("objective", _LEGACY_OBJECTIVE)
            self.set_meta("schema_version", SCHEMA_VERSION)
        self._add_later_parts()
        self._score_column = "score"

    def _add_later_parts(self) -> None:
        self.db.executescript(_RUNGS_SCHEMA)
        columns = {r["name"] for r in self.db.execute("PRAGMA table_info(attempts)")}
        if "redraw_of" not in columns:
            self.db.execute("ALTER TABLE attempts ADD COLUMN redraw_of INTEGER")
        if "source" not in columns:
            self.db.execute("ALTER TABLE attempts ADD COLUMN source TEXT NOT NULL DEFAULT ''")

    @property
    def objective(self) -> dict[str, Any]:
        """The run's objective: name, direction (and a user objective's text)."""
        found = self.get_meta("objective")
        return dict(found) if isinstance(found, dict) else dict(_LEGACY_OBJECTIVE)

    @property
    def direction(self) -> Direction:
        """The objective's direction (stored as its string, parsed here)."""
        return Direction.parse(str(self.objective.get("direction", Direction.MINIMIZE)))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self.db.in_transaction:  # SQLite itself rolls back on a full disk
                self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- meta ----------------------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                        (key, encode_json(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else decode_json(row["value"])

    # -- variants ------------------------------------------------------------------------
    def add_variant(self, hash_: str, source: str, values: dict[str, Any], episode: int,
                    status: VariantStatus = VariantStatus.PENDING, stage: str = "",
                    reason: str = "") -> None:
        """Record a variant the first time it is seen (later sightings change nothing)."""
        self.db.execute(
            "INSERT OR IGNORE INTO variants (hash, source, site_values, status, stage, reason, "
            "first_episode, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (hash_, source, encode_json(values), status, stage, reason, episode, time.time()),
        )

    def record_evaluation(self, result: EvalResult) -> None:
        """Store one evaluation, committed at once."""
        self.db.execute(
            "UPDATE variants SET status = ?, stage = ?, reason = ?, traceback = ?, "
            "score = ?, metrics = ?, scored_at = ? WHERE hash = ?",
            (result.status.value, result.stage, result.reason, result.traceback,
             result.score, encode_json(result.metrics), time.time(),
             result.hash),
        )

    def variant(self, hash_: str) -> VariantRow | None:
        row = self.db.execute("SELECT * FROM variants WHERE hash = ?", (hash_,)).fetchone()
        return None if row is None else self._variant(row)

    def _variant(self, row: sqlite3.Row) -> VariantRow:
        return VariantRow(
            hash=row["hash"], source=row["source"], values=decode_json(row["site_values"]),
            status=VariantStatus(row["status"]), stage=row["stage"], reason=row["reason"],
            traceback=row["traceback"], score=row[self._score_column],
            metrics=decode_json(row["metrics"]), first_episode=row["first_episode"],
            created_at=row["created_at"], scored_at=row["scored_at"],
        )

    def variant_hashes(self) -> set[str]:
        return {str(r[0]) for r in self.db.execute("SELECT hash FROM variants")}

    def variants(self) -> list[VariantRow]:
        return [self._variant(r) for r in self.db.execute(
            "SELECT * FROM variants ORDER BY created_at, hash")]

    def evaluations_done(self) -> int:
        """Variants evaluated: scored, failed, or stopped early at a lower rung."""
        return int(self.db.execute(
            "SELECT COUNT(*) FROM variants WHERE status IN "
            + sql_list(VariantStatus.SCORED, VariantStatus.FAILED, VariantStatus.PRUNED)
        ).fetchone()[0])

    def set_pruned(self, hash_: str, rung: int, resource: int, score: float | None,
                   unit: str) -> None:
        """A variant stopped early: evaluated up to `rung` (at `resource` rows or steps)
        and not promoted. Its rung score is in the rungs table, never in `score`, which
        holds full evaluations only (so no view compares scores of different rungs)."""
        self.db.execute(
            "UPDATE variants SET status = ?, stage = ?, reason = ?, score = NULL, "
            "scored_at = ? WHERE hash = ?",
            (VariantStatus.PRUNED.value, f"rung {rung}",
             f"stopped early at rung {rung} ({resource} {unit}): score "
             f"{score:.6g} not in its rung's top share" if score is not None
             else f"stopped early at rung {rung}", time.time(), hash_))

    def set_promoted(self, hash_: str, rung: int) -> None:
        """A pruned variant goes up to `rung`: pending again until that rung's result."""
        self.db.execute("UPDATE variants SET status = ?, stage = ?, reason = '' "
                        "WHERE hash = ?", (VariantStatus.PENDING.value, f"rung {rung}", hash_))

    # -- rungs (multi-fidelity and asynchronous runs) ------------------------------------
    def start_rung(self, hash_: str, rung: int, resource: int, episode: int) -> None:
        """An evaluation of `hash_` at `rung` started (`running` until it finishes: a
        resume runs it again)."""
        self.db.execute(
            "INSERT OR IGNORE INTO rungs (hash, rung, resource, status, episode, started_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (hash_, rung, resource, RungStatus.RUNNING.value, episode, time.time()))

    def finish_rung(self, result: EvalResult, rung: int) -> None:
        self.db.execute(
            "UPDATE rungs SET status = ?, score = ?, metrics = ?, finished_at = ? "
            "WHERE hash = ? AND rung = ?",
            (result.status.value, result.score, encode_json(result.metrics),
             time.time(), result.hash, rung))

    def rungs(self) -> list[RungRow]:
        """Every rung evaluation, in the order they finished (running ones last, in the
        order they started); empty for a run without them."""
        try:
            rows = self.db.execute(
                "SELECT * FROM rungs ORDER BY finished_at IS NULL, finished_at, started_at, "
                "rowid").fetchall()
        except sqlite3.OperationalError:  # a run database from before the rungs table
            return []
        return [row_of(RungRow, r, status=RungStatus(r["status"]),
                       metrics=decode_json(r["metrics"])) for r in rows]

    # -- checks (--max-params, --constraint) ---------------------------------------------
    def record_check(self, result: CheckResult) -> None:
        """Store a check; a variant it blocks becomes ``rejected`` at stage
        ``constraint`` (never evaluated)."""
        self.db.execute(
            "INSERT OR REPLACE INTO checks (hash, verdict, rule, reason, params, built, "
            "seconds, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (result.hash, result.verdict.value, result.rule, result.reason, result.params,
             result.built, result.seconds, time.time()))
        if result.blocks:
            metrics = {"params": result.params} if result.params is not None else {}
            self.db.execute(
                "UPDATE variants SET status = ?, stage = 'constraint', reason = ?, "
                "traceback = ?, metrics = ? WHERE hash = ?",
                (VariantStatus.REJECTED.value, result.reason, result.traceback,
                 encode_json(metrics), result.hash))

    def checks(self) -> dict[str, CheckResult]:
        """Every check, by variant, in the order they were recorded (empty for a run
        without constraints, or from before the checks table)."""
        try:
            rows = self.db.execute("SELECT * FROM checks ORDER BY created_at, rowid").fetchall()
        except sqlite3.OperationalError:
            return {}
        return {r["hash"]: CheckResult.from_dict(dict(r)) for r in rows}

    def blocked(self) -> list[tuple[float, str, int, int]]:
        """Variants a check blocked, in the order they were checked: (when, hash, and the
        episode and batch of the attempt that proposed it)."""
        try:
            rows = self.db.execute(
                "SELECT c.created_at, c.hash, a.episode, a.batch FROM checks c JOIN attempts a "
                "ON a.child = c.hash WHERE c.verdict IN ('reject', 'error') "
                "GROUP BY c.hash ORDER BY c.created_at, c.rowid").fetchall()
        except sqlite3.OperationalError:
            return []
        return [(float(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]

    def check(self, hash_: str) -> CheckResult | None:
        try:
            row = self.db.execute("SELECT * FROM checks WHERE hash = ?", (hash_,)).fetchone()
        except sqlite3.OperationalError:
            return None
        return None if row is None else CheckResult.from_dict(dict(row))

    # -- attempts ------------------------------------------------------------------------
    def add_attempts(self, rows: Iterable[dict[str, Any]]) -> None:
        now = time.time()
        self.db.executemany(
            "INSERT INTO attempts (episode, batch, slot, parent, child, proposer, outcome, "
            "reason, edits, raw_text, created_at, redraw_of, source) VALUES (:episode, "
            ":batch, :slot, :parent, :child, :proposer, :outcome, :reason, :edits, "
            ":raw_text, :created_at, :redraw_of, :source)",
            [{**r, "edits": encode_json(r.get("edits", [])), "created_at": now,
              "redraw_of": r.get("redraw_of"), "source": r.get("source", "")} for r in rows],
        )

    def attempts(self, episode: int | None = None, batch: int | None = None) -> list[AttemptRow]:
        query = "SELECT * FROM attempts"
        args: tuple[int, ...] = ()
        if episode is not None and batch is not None:
            query, args = query + " WHERE episode = ? AND batch = ?", (episode, batch)
        return [_attempt(r) for r in self.db.execute(query + " ORDER BY id", args)]

    # -- batches and episodes ------------------------------------------------------------
    def start_batch(self, episode: int, batch: int, parent: str, seed: int) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO batches (episode, batch, parent, seed, started_at) "
            "VALUES (?, ?, ?, ?, ?)", (episode, batch, parent, seed, time.time()))

    def set_batch_proposal_time(self, episode: int, batch: int, seconds: float) -> None:
        self.db.execute("UPDATE batches SET proposal_seconds = ? WHERE episode = ? AND batch = ?",
                        (seconds, episode, batch))

    def finish_batch(self, episode: int, batch: int, best: str) -> None:
        self.db.execute("UPDATE batches SET best = ?, finished_at = ? WHERE episode = ? AND "
                        "batch = ?", (best, time.time(), episode, batch))

    def batch(self, episode: int, batch: int) -> BatchRow | None:
        row = self.db.execute("SELECT * FROM batches WHERE episode = ? AND batch = ?",
                              (episode, batch)).fetchone()
        return None if row is None else row_of(BatchRow, row)

    def batches(self) -> list[BatchRow]:
        return [row_of(BatchRow, r)
                for r in self.db.execute("SELECT * FROM batches ORDER BY episode, batch")]

    def start_episode(self, episode: int, source_hash: str, seed: int) -> None:
        self.db.execute("INSERT OR IGNORE INTO episodes (episode, source_hash, seed, started_at) "
                        "VALUES (?, ?, ?, ?)", (episode, source_hash, seed, time.time()))

    def record_training(self, episode: int, training: dict[str, Any]) -> None:
        self.db.execute("UPDATE episodes SET training = ?, trained_at = ? WHERE episode = ?",
                        (encode_json(training), time.time(), episode))

    def finish_episode(self, episode: int, best: str) -> None:
        self.db.execute("UPDATE episodes SET best = ?, finished_at = ? WHERE episode = ?",
                        (best, time.time(), episode))

    def episode(self, episode: int) -> EpisodeRow | None:
        row = self.db.execute("SELECT * FROM episodes WHERE episode = ?", (episode,)).fetchone()
        return None if row is None else _episode(row)

    def episodes(self) -> list[EpisodeRow]:
        return [_episode(r) for r in self.db.execute("SELECT * FROM episodes ORDER BY episode")]


def _attempt(row: sqlite3.Row) -> AttemptRow:
    return AttemptRow(
        id=row["id"], episode=row["episode"], batch=row["batch"], slot=row["slot"],
        parent=row["parent"], child=row["child"], proposer=row["proposer"],
        outcome=row["outcome"], reason=row["reason"], edits=decode_json(row["edits"]),
        raw_text=row["raw_text"],
        redraw_of=row["redraw_of"] if "redraw_of" in row.keys() else None,  # noqa: SIM118
        source=row["source"] if "source" in row.keys() else "",  # noqa: SIM118
    )


def _episode(row: sqlite3.Row) -> EpisodeRow:
    return row_of(EpisodeRow, row, training=decode_json(row["training"]))
