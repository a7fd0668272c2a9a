"""The job records: what crosses into a worker, the paths each declares (what a confined
worker binds and the Ray executor ships), and the one table of job kinds."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from dataclasses import fields

import pytest

from deepphoenix.jobs import JOBS
from deepphoenix.sandbox import (
    CheckJob,
    EvalJob,
    GenerateJob,
    GenerateReport,
    GenerationJob,
    Job,
    NamedJob,
    TrainJob,
    TrainReport,
    as_job,
)

EVAL = EvalJob(source="x = 1\n", objective={"name": "fewshot", "direction": "minimize"},
               task="refinement", rows="/data/rows.json", vocab_size=100, samples=8,
               heldout=0, batch_size=4, lr=1e-3, weight_decay=0.01, seed=0, timeout=60.0)
TRAIN = TrainJob(source="x = 1\n", vocab_size=100, tokens="/data/tokens.json",
                 tokenizer="/data/tokenizer.json", out="/run/episodes/1/model",
                 model_dir="/run/episodes/0/model", epochs=1, seed=3)
GENERATE = GenerateJob(input_ids=(5, 6, 7), max_new_tokens=16, n=4, seed=1,
                       tokenizer="/run/model/tokenizer.json", model_dir="/run/model",
                       constraint={"pieces": ["a"]})
GENERATION = GenerationJob(source="print(1)\n", seed=2, timeout=30.0)
CHECK = CheckJob(source="x = 1\n", objective={"name": "fewshot", "direction": "minimize"},
                 task="refinement", vocab_size=100, seed=0, max_params=1000)
RECORDS: list[Job] = [EVAL, TRAIN, GENERATE, GENERATION, CHECK]


@pytest.mark.parametrize("job", RECORDS, ids=lambda j: j.kind)
def test_a_job_crosses_as_its_kind_and_a_json_dict(job: Job) -> None:
    wire = json.loads(json.dumps({"kind": job.kind, "args": job.to_dict()}))
    table = {record.KIND: record for record in JOBS}
    assert table[wire["kind"]].from_dict(wire["args"]) == job
    assert pickle.loads(pickle.dumps(job)) == job  # Ray ships records to its actors


def test_every_job_kind_is_in_the_table_once_with_its_function() -> None:
    kinds = [record.KIND for record in JOBS]
    assert sorted(kinds) == sorted({type(job).KIND for job in RECORDS})
    assert all(kind and ":" not in kind for kind in kinds)  # never an extra job's name
    for load in JOBS.values():
        assert callable(load())


def test_each_record_declares_its_paths_by_field() -> None:
    assert EVAL.paths().files == {"rows": "/data/rows.json"}
    train = TRAIN.paths()
    assert train.files == {"tokens": "/data/tokens.json", "tokenizer": "/data/tokenizer.json"}
    assert train.folders == {"model_dir": "/run/episodes/0/model"}
    assert train.outputs == {"out": "/run/episodes/1/model"}
    assert GENERATE.paths().inputs == {"tokenizer": "/run/model/tokenizer.json",
                                       "model_dir": "/run/model"}
    assert GENERATION.paths().inputs == {} and GENERATION.paths().outputs == {}
    # every declared name is a field of its record
    for job in RECORDS:
        names = {f.name for f in fields(job)}
        assert {*job.INPUT_FILES, *job.INPUT_FOLDERS, *job.OUTPUT_FOLDERS} <= names


def test_an_empty_path_names_nothing_and_with_paths_changes_only_paths() -> None:
    fresh = TrainJob(source="x = 1\n", vocab_size=100, tokens="/t", tokenizer="/k")
    assert fresh.paths().folders == {} and fresh.paths().outputs == {}
    assert EvalJob.from_dict({**EVAL.to_dict(), "rows": ""}).paths().files == {}
    moved = TRAIN.with_paths({"tokens": "/actor/t", "out": "/actor/out"})
    assert isinstance(moved, TrainJob)
    assert moved.tokens == "/actor/t" and moved.out == "/actor/out"
    assert moved.tokenizer == TRAIN.tokenizer and moved.source == TRAIN.source


def test_a_named_job_declares_which_arguments_are_paths() -> None:
    job = NamedJob("tests.sandbox._hostile:snoop", {"rows": "/r", "read": ["/r"]},
                   input_files=("rows",))
    assert job.kind == "tests.sandbox._hostile:snoop"
    assert job.to_dict() == {"rows": "/r", "read": ["/r"]}
    assert job.paths().files == {"rows": "/r"}
    assert job.with_paths({"rows": "/local/r"}).to_dict()["rows"] == "/local/r"
    assert as_job("m:f", {"a": 1}) == NamedJob("m:f", {"a": 1})
    assert as_job(EVAL) is EVAL
    with pytest.raises(TypeError, match="carries its own arguments"):
        as_job(EVAL, {"a": 1})


def test_reports_round_trip_through_their_dicts() -> None:
    report = TrainReport(params=10, steps=2, seconds=0.5, mean_loss=1.5, final_loss=1.0,
                         device="cpu", losses=(2.0, 1.0), dynamics={"lr": 0.001})
    again = TrainReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report
    assert set(report.summary()) == set(TrainReport.SUMMARY)
    samples = GenerateReport(((1, 2), (3,)), 0.25)
    assert GenerateReport.from_dict(json.loads(json.dumps(samples.to_dict()))) == samples


def test_the_worker_entry_point_imports_no_torch() -> None:
    """A worker imports the job table at start; each job's module (and torch) only when
    a job of its kind runs."""
    code = ("import sys, deepphoenix.jobs, deepphoenix.sandbox._child\n"
            "print(sorted(m for m in ('torch', 'transformers', 'deepphoenix.evaluator',"
            " 'deepphoenix.proposers', 'deepphoenix.quine') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "[]"
