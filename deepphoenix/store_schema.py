"""The run database's tables (schema 2), as SQL: `store.RunStore` creates them, and adds to
an older run's database, on resume, the parts that came later (`RUNGS_SCHEMA`: the rungs
and checks tables). Statuses are stored as the values of `status.VariantStatus` and
`status.RungStatus`."""

from __future__ import annotations

__all__ = ["CHECKS_SCHEMA", "RUNGS_SCHEMA", "SCHEMA"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS variants (
    hash TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    site_values TEXT NOT NULL,
    status TEXT NOT NULL,
    stage TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    traceback TEXT NOT NULL DEFAULT '',
    mean_loss REAL,
    score REAL,
    metrics TEXT NOT NULL DEFAULT '{}',
    first_episode INTEGER,
    created_at REAL NOT NULL,
    scored_at REAL
);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    episode INTEGER NOT NULL,
    batch INTEGER NOT NULL,
    slot INTEGER NOT NULL,
    parent TEXT NOT NULL,
    child TEXT,
    proposer TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    edits TEXT NOT NULL DEFAULT '[]',
    raw_text TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    redraw_of INTEGER,
    source TEXT NOT NULL DEFAULT '',
    UNIQUE (episode, batch, slot)
);
CREATE TABLE IF NOT EXISTS batches (
    episode INTEGER NOT NULL,
    batch INTEGER NOT NULL,
    parent TEXT NOT NULL,
    seed INTEGER NOT NULL,
    best TEXT,
    proposal_seconds REAL,
    started_at REAL NOT NULL,
    finished_at REAL,
    PRIMARY KEY (episode, batch)
);
CREATE TABLE IF NOT EXISTS episodes (
    episode INTEGER PRIMARY KEY,
    source_hash TEXT NOT NULL,
    seed INTEGER NOT NULL,
    training TEXT NOT NULL DEFAULT '{}',
    best TEXT,
    started_at REAL NOT NULL,
    trained_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS attempts_by_child ON attempts (child);
""" + """
CREATE TABLE IF NOT EXISTS rungs (
    hash TEXT NOT NULL,
    rung INTEGER NOT NULL,
    resource INTEGER NOT NULL,
    status TEXT NOT NULL,
    score REAL,
    metrics TEXT NOT NULL DEFAULT '{}',
    episode INTEGER NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    PRIMARY KEY (hash, rung)
);
"""
CHECKS_SCHEMA = """
CREATE TABLE IF NOT EXISTS checks (
    hash TEXT PRIMARY KEY,
    verdict TEXT NOT NULL,
    rule TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    params INTEGER,
    built TEXT NOT NULL DEFAULT '',
    seconds REAL,
    created_at REAL NOT NULL
);
"""
SCHEMA += CHECKS_SCHEMA
# The rungs table came after schema 2's first runs, and the checks table and the attempts'
# redraw_of column after it: a resume adds them (empty until a run uses them), readers of
# older runs find none.
RUNGS_SCHEMA = SCHEMA[SCHEMA.index("CREATE TABLE IF NOT EXISTS rungs"):]
