"""The run database returns records (batches, episodes, rungs) and writes every JSON column
one way: standard JSON, non-finite numbers as strings, read back as floats."""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from deepphoenix.evaluator import EvalResult, EvalStatus
from deepphoenix.status import RungStatus, VariantStatus
from deepphoenix.store import BatchRow, EpisodeRow, RungRow, RunStore
from deepphoenix.store_rows import decode_json, encode_json

NON_FINITE = {"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "list": [1.0, math.nan]}


def _store(tmp_path: Path) -> RunStore:
    store = RunStore.create(tmp_path / "run", {"seed": 0})
    with store.transaction():
        store.add_variant("a" * 16, "x = 1\n", {"x": 1}, 0)
        store.start_episode(1, "a" * 16, 7)
        store.record_training(1, {"losses": [2.0, math.nan], "steps": 2})
        store.start_batch(1, 1, "a" * 16, 11)
        store.finish_batch(1, 1, "a" * 16)
        store.start_rung("a" * 16, 0, 3, 1)
        store.finish_rung(EvalResult("a" * 16, EvalStatus.SCORED, score=1.5,
                                     metrics=dict(NON_FINITE)), 0)
        store.record_evaluation(EvalResult("a" * 16, EvalStatus.SCORED, score=1.5,
                                           metrics=dict(NON_FINITE)))
        store.set_meta("rescore", [{"stored": math.inf}])
    return store


def _columns(store: RunStore, table: str) -> list[str]:
    return [r["name"] for r in store.db.execute(f"PRAGMA table_info({table})")]


def test_batches_episodes_and_rungs_are_frozen_records(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        (batch,) = store.batches()
        episode = store.episode(1)
        (rung,) = store.rungs()
        assert isinstance(batch, BatchRow) and store.batch(1, 1) == batch
        assert isinstance(episode, EpisodeRow) and store.episodes() == [episode]
        assert isinstance(rung, RungRow)
        assert (batch.parent, batch.seed, batch.best) == ("a" * 16, 11, "a" * 16)
        assert batch.finished_at is not None and episode.finished_at is None
        assert episode.training["steps"] == 2 and math.isnan(episode.training["losses"][1])
        assert rung.status is RungStatus.SCORED and (rung.rung, rung.resource) == (0, 3)
        # the dicts they replace: same keys, in the table's order; a field by name
        for row, table in ((batch, "batches"), (episode, "episodes"), (rung, "rungs")):
            assert list(row.to_dict()) == _columns(store, table)
            assert all(row[k] == v or v != v for k, v in row.to_dict().items())
            with pytest.raises(dataclasses.FrozenInstanceError):
                row.episode = 2
        with pytest.raises(KeyError):
            batch["nope"]


def _strict(text: str) -> Any:
    def refuse(token: str) -> Any:
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_every_json_column_is_standard_json_and_reads_back_non_finite_numbers(
        tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        columns = [("meta", "value"), ("variants", "site_values"), ("variants", "metrics"),
                   ("episodes", "training"), ("rungs", "metrics"), ("attempts", "edits")]
        for table, column in columns:
            for (text,) in store.db.execute(f"SELECT {column} FROM {table}"):
                _strict(text)  # what SQLite's json_extract and every JSON reader accept
        variant = store.variant("a" * 16)
        assert variant is not None and variant.status is VariantStatus.SCORED
        for metrics in (variant.metrics, store.rungs()[0].metrics):
            assert math.isnan(metrics["nan"]) and metrics["inf"] == math.inf
            assert metrics["ninf"] == -math.inf and math.isnan(metrics["list"][1])
        assert store.get_meta("rescore") == [{"stored": math.inf}]


def test_a_database_written_with_nan_tokens_reads_the_same(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        path = store.path
    db = sqlite3.connect(path)
    db.execute("UPDATE episodes SET training = ?", ('{"losses": [NaN, Infinity]}',))
    db.commit()
    db.close()
    with RunStore.open(path.parent) as store:
        episode = store.episode(1)
        assert episode is not None
        losses = episode.training["losses"]
        assert math.isnan(losses[0]) and losses[1] == math.inf


@pytest.mark.parametrize("value", [
    {"a": 1, "b": [1.5, "x", None, True]}, [math.inf, -math.inf], {"p": Path("/x")}, "text"])
def test_encode_then_decode_is_the_value(value: Any) -> None:
    text = encode_json(value)
    _strict(text)
    back = decode_json(text)
    assert back == json.loads(json.dumps(value, default=str))
