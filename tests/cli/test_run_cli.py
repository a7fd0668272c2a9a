from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from deepphoenix.store import RunStore
from tests.cli.conftest import Invoke


@pytest.mark.parametrize(
    ("args", "setup", "code", "message"),
    [
        (["run", "--resume"], None, 1, "no unfinished run under ./runs"),
        (["run", "--run-dir", "r"], "run", 1, "already holds a run; pass --resume"),
        (["run", "--run-dir", "r", "--resume", "--episodes", "5"], "run", 1,
         "a resumed run keeps its stored config; drop episodes"),
        (["run", "--run-dir", "nope", "--resume"], None, 1, "nope: no such run directory"),
        (["run", "--preset", "huge"], None, 2, "'--preset'"),
        (["run", "--source", "missing.py", "--run-dir", "x"], None, 1, "missing.py: no such file"),
        (["run", "--episodes", "0"], None, 2, "'--episodes'"),
        (["lineage", "show", "nope"], None, 1, "nope: no such run directory"),
        (["lineage", "export", ".", "-o", "x.json"], None, 1, "not a deepphoenix run directory"),
        (["lineage", "export", "r", "--format", "csv", "-o", "x"], "run", 2, "'--format'"),
        (["plot", "nope"], None, 1, "no such run directory"),
        (["evaluate", "missing.py"], None, 1, "missing.py: no such file"),
        (["lineage", "best", "r"], "run", 1, "no variant recorded yet"),
        (["lineage", "show", "r"], "run", 1, "no variant recorded yet"),
        (["lineage", "export", "r", "-o", "/proc/nope/x.json"], "run", 1, "/proc/nope"),
        (["lineage", "show", "r"], "corrupt", 1, "run database: database disk image is malformed"),
        (["run", "--run-dir", "/proc/nope/r"], None, 1, "cannot create run directory"),
        (["run", "--objective", "nope.py:evaluate", "--run-dir", "x"], None, 1,
         "objective file: nope.py: no such file"),
        (["run", "--objective", "score.py:evaluat", "--run-dir", "x"], "objective", 1,
         "has no function 'evaluat' (it defines evaluate, wrong). Did you mean 'evaluate'?"),
        (["run", "--objective", "score.py:wrong", "--run-dir", "x"], "objective", 1,
         "wrong(program) has the wrong signature; an objective is called as "
         "wrong(program, ctx)"),
        (["run", "--objective", "score.py", "--run-dir", "x"], "objective", 1,
         "Unknown objective 'score.py'"),
        (["run", "--direction", "sideways", "--run-dir", "x"], None, 1,
         "Unknown direction 'sideways'"),
        (["run", "--objective", "val-loss", "--direction", "maximize", "--run-dir", "x"], None,
         1, "'val-loss' objective is a loss and is minimized"),
        (["evaluate", "--objective", "score.py:wrong", "s.py"], "objective", 1,
         "wrong signature"),
        (["run", "--proposer", "t5x"], None, 2, "'t5x' is not one of"),
        # numbers past any sensible bound: one line, nothing written (no run dir "x")
        (["run", "--timeout", "1e300", "--run-dir", "x"], None, 1,
         "Expected a positive number <= 2.592e+06 but got timeout=1e+300"),
        (["run", "--train-timeout", "inf", "--run-dir", "x"], None, 1, "train_timeout=inf"),
        (["run", "--episodes", "1000", "--batches", "1000", "--candidates", "8",
          "--run-dir", "x"], None, 1, "8,000,000 is over the limit"),
        (["evaluate", "s.py", "-g", "infer", "--timeout", "inf"], "objective", 1,
         "timeout=inf"),
        (["evaluate", "s.py", "-g", "infer", "--vocab-size", "1000000000"], "objective", 1,
         "vocab_size=1000000000"),
        (["evaluate", "s.py", "-g", "infer", "--samples", "1000000000"], "objective", 1,
         "dataset_size=1000000064"),
        (["train", "--source", "s.py", "--out", "x", "--vocab-size", "1000000000"], None, 2,
         "'--vocab-size'"),
    ],
)
def test_bad_run_input(invoke: Invoke, tmp_path: Path, args: list[str], setup: object,
                       code: int, message: str) -> None:
    if setup in ("run", "corrupt"):
        RunStore.create(tmp_path / "r", {"episodes": 1}).close()
    if setup == "objective":
        (tmp_path / "score.py").write_text(OBJECTIVE)
        (tmp_path / "s.py").write_text("x = 1\n")
    if setup == "corrupt":
        _corrupt(tmp_path / "r" / "run.sqlite")
    result = invoke(*args)
    assert result.exit_code == code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not (tmp_path / "x").exists()


OBJECTIVE = """
def evaluate(program, ctx):
    return "0.9"

def wrong(program):
    return 1.0
"""


def test_evaluate_scores_a_file(invoke: Invoke, tmp_path: Path) -> None:
    from deepphoenix.seeds import seed_source

    (tmp_path / "t.py").write_text(seed_source("tiny"))
    result = invoke("evaluate", "t.py", "--samples", "32", "--vocab-size", "300")
    assert result.exit_code == 0, result.stderr
    assert "fewshot " in result.stdout and "M parameters" in result.stdout
    assert "lower is better" in result.stdout
    (layers,) = [line for line in result.stdout.splitlines() if line.startswith("sandbox: ")]
    from deepphoenix.sandbox._confine import confinement

    if confinement().available:  # the layers in place, said once
        assert layers.startswith("sandbox: mount, PID, network namespaces (bubblewrap "
                                 f"{confinement().version}, {confinement().origin}: ")
        assert "runs as uid " in layers and "(not root)" in layers
    else:
        assert f"no mount or PID namespace ({confinement().reason})" in layers


def test_evaluate_needs_no_grammar_when_the_objective_reads_no_task_data(
        invoke: Invoke, tmp_path: Path) -> None:
    """Files with no site of the default grammar (t5): an own objective and
    self-replication read no task data, so no grammar is bound (issue 28, item 6)."""
    from tests.cli.test_quine_cli import TABLE_QUINE

    (tmp_path / "score.py").write_text("def evaluate(program, ctx):\n"
                                       "    return float(program['w'])\n")
    (tmp_path / "m.py").write_text("w = 3\n")
    result = invoke("evaluate", "m.py", "--objective", "score.py:evaluate")
    assert result.exit_code == 0, result.stderr
    assert "m.py: score.py:evaluate 3" in result.stdout
    (tmp_path / "zq.py").write_text(TABLE_QUINE)
    quine = invoke("evaluate", "zq.py", "--objective", "self-replication", "--timeout", "120")
    assert quine.exit_code == 0, quine.stderr
    assert "zq.py: self-replication " in quine.stdout


def test_an_objective_that_returns_a_string_fails_the_seed_in_one_line(
        invoke: Invoke, tmp_path: Path) -> None:
    (tmp_path / "score.py").write_text(OBJECTIVE)
    (tmp_path / "m.py").write_text("import torch\nmodel = torch.nn.Linear(2, 1)\nw = 3\n")
    (tmp_path / "g.toml").write_text("[sites.w]\nselect = 'name:w'\nkind = 'int'\n"
                                     "min = 1\nmax = 9\n")
    result = invoke("run", "--source", "m.py", "--grammar", "g.toml", "--objective",
                    "score.py:evaluate", "--proposer", "random", "--preset", "smoke",
                    "--run-dir", "r")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert [line for line in lines if line.startswith("error:")] == lines[-1:] == [
        "error: the seed itself fails at the objective stage: the objective's return value "
        "is a str ('0.9'); expected a number or a mapping with a 'score' key"]
    assert "Traceback" not in result.stderr


def _corrupt(path: Path) -> None:
    """Fill the variants table, then overwrite the start of every page after the first
    three: the header still opens, queries find a malformed page."""
    db = sqlite3.connect(path)
    db.executemany("INSERT INTO variants (hash, source, site_values, status, created_at) "
                   "VALUES (?, ?, '{}', 'scored', 0)", [(f"h{i}", "x" * 500) for i in range(300)])
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    data = bytearray(path.read_bytes())
    for offset in range(4096 * 3, len(data), 4096):
        data[offset:offset + 100] = bytes(range(100))
    path.write_bytes(bytes(data))
