"""A run's events are typed records: every event a real run emits is a registered record,
its `kind` and `fields` are what ``--json`` printed before the records (the keys below),
and the CLI's display has a handler for every record."""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any

import pytest

from deepphoenix.cli._display import RunDisplay
from deepphoenix.cli._progress import Reporter
from deepphoenix.engine import (
    EVENTS,
    RECORDS,
    Event,
    OtherEvent,
    ProposerFailed,
    Run,
    RunConfig,
    TrainingStep,
    event_of,
)
from tests.search import synthetic

# What `--json` prints for each kind (after "event"), in order: the format scripts read.
RUN_KEYS = ["run_dir", "objective", "direction", "seed_hash", "seed_score", "seed_params",
            "best_hash", "best_score", "best_params", "evaluations", "seconds", "best_path",
            "rescore", "nothing_evaluated"]
EVALUATED = ["episode", "batch", "hash", "status", "stage", "reason", "score", "params",
             "seconds", "done"]
JSON_KEYS = {
    "run": ["run_dir", "objective", "direction", "resumed"],  # the config is left out
    "sandbox": ["line"],
    "preflight": ["verdict", "params", "seconds"],
    "scoring": ["episode", "batch", "count"],
    "evaluated": EVALUATED,
    "seed": ["hash", "score", "params"],
    "episode": ["episode", "episodes", "source", "score"],
    "batch": ["episode", "batch", "batches", "parent"],
    "proposed": ["episode", "batch", "outcomes"],
    "promoted": ["episode", "hash", "rung", "resource"],
    "batch_done": ["episode", "batch", "best", "score", "improved"],
    "episode_done": ["episode", "best", "score"],
    "rescored": ["hash", "stored", "rescored", "verdict", "reason"],
    "done": RUN_KEYS,
}


@pytest.fixture(scope="module")
def run_events(tmp_path_factory: pytest.TempPathFactory) -> list[Event]:
    """The events of a short real run: greedy batches whose candidates climb ASHA rungs
    (a user objective, so the pre-flight check runs too)."""
    folder = tmp_path_factory.mktemp("events")
    synthetic.write(folder, steps=9)
    config = RunConfig(
        seed_source=str(folder / "prog.py"), grammar=str(folder / "g.toml"),
        objective=f"{folder / 'score.py'}:evaluate", proposer="random", episodes=1,
        batches=2, candidates=3, max_steps=9, timeout=60.0, fidelity="asha", workers=1)
    events: list[Event] = []
    run = Run(folder / "run", config, on_event=events.append)
    try:
        run.execute()
    finally:
        run.close()
    return events


def test_every_event_a_run_emits_is_a_registered_record(run_events: list[Event]) -> None:
    assert {e.kind for e in run_events} >= set(JSON_KEYS)
    for event in run_events:
        assert type(event) in RECORDS and not isinstance(event, OtherEvent), event
        assert isinstance(event.fields, dict)
        assert dataclasses.is_dataclass(event)
        first = dataclasses.fields(event)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(event, first, None)


def test_the_json_lines_keep_their_keys(run_events: list[Event],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    display = RunDisplay(Reporter("json"), RunConfig())
    for event in run_events:
        display(event)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["event"] for line in lines] == [e.kind for e in run_events]
    rung_keys = [*EVALUATED, "rung", "resource", "rungs"]  # the asynchronous loop's
    for line in lines:
        keys = list(line)[1:]
        expected = JSON_KEYS[line["event"]]
        assert keys == expected or (line["event"] == "evaluated" and keys == rung_keys), line
    assert any(list(line)[1:] == rung_keys for line in lines)
    assert all(isinstance(line["status"], str) for line in lines if "status" in line)


def test_the_display_has_a_handler_for_every_record() -> None:
    missing = [r.__name__ for r in RECORDS if RunDisplay.handler(r) is None]
    assert not missing, f"records without a display handler: {missing}"
    assert set(EVENTS.values()) <= set(RECORDS) and len(EVENTS) >= 20
    assert RunDisplay.handler(OtherEvent) is None


def test_the_display_shows_a_real_run(run_events: list[Event]) -> None:
    out = io.StringIO()
    display = RunDisplay(Reporter("line", stream=out), RunConfig(episodes=1, batches=2))
    for event in run_events:
        display(event)
    text = out.getvalue()
    assert "run directory: " in text and "objective: " in text
    assert "seed " in text and "episode 1/1: source " in text
    assert "batch 2: proposed " in text and "re-scored in a fresh process" in text
    assert "episode 1 done: best " in text


@pytest.mark.parametrize(("kind", "fields", "record"), [
    ("training", {"episode": 1, "step": 2, "total": 4, "loss": 0.5}, TrainingStep),
    ("proposer_failed", {"episode": 1, "reason": "boom"}, ProposerFailed),
    ("proposer_failed", {"reason": "boom"}, ProposerFailed),
    ("my_proposer_note", {"anything": [1, 2]}, OtherEvent),
    ("training", {"step": 2, "extra": True}, OtherEvent),  # not the record's fields
])
def test_a_proposers_event_becomes_its_record_and_keeps_its_fields(
        kind: str, fields: dict[str, Any], record: type[Event]) -> None:
    event = event_of(kind, fields)
    assert type(event) is record
    assert event.kind == kind and event.fields == fields
    assert list(event.fields) == list(fields)


def test_a_record_is_read_by_attribute() -> None:
    event = event_of("training", {"episode": 1, "step": 2, "total": 4, "loss": 0.5})
    assert isinstance(event, TrainingStep) and (event.step, event.total) == (2, 4)
