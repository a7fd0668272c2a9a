from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepphoenix.seeds import seed_source
from tests.cli.conftest import Invoke


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.py"
    path.write_text(seed_source("tiny"))
    return path


def test_dataset_writes_pairs(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("dataset", "-n", "50", "--seed", "3", "--format", "edits", "-o", "d.jsonl")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert len(rows) == 50 and all(r["format"] == "edits" for r in rows)
    assert rows[0]["input"].startswith("config = transformers.AutoConfig")
    again = invoke("dataset", "-n", "50", "--seed", "3", "--format", "edits", "-o", "e.jsonl")
    assert again.exit_code == 0
    assert (tmp_path / "e.jsonl").read_text() == (tmp_path / "d.jsonl").read_text()


def test_train_then_propose(invoke: Invoke, tiny: Path, tmp_path: Path) -> None:
    result = invoke("train", "--source", tiny, "--out", "m", "--pairs", "128", "--epochs", "1",
                    "--vocab-size", "400", "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    assert "saved to m/" in result.stdout
    assert (tmp_path / "m" / "model.safetensors").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".m.")]  # staging gone
    shown = invoke("propose", tiny, "--model", "m", "-n", "4", "--json")
    assert shown.exit_code == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert len(data["candidates"]) == 4 and data["constrained"] is True
    assert all(c["outcome"] in ("ok", "duplicate") for c in data["candidates"])
    assert sum(data["outcomes"].values()) == 4 and data["draws"] >= 4
    once = json.loads(invoke("propose", tiny, "--model", "m", "-n", "4", "--json",
                             "--rounds", "1").stdout)
    assert once["draws"] == 4
    text = invoke("propose", tiny, "--model", "m", "-n", "2")
    assert text.exit_code == 0 and "candidates valid" in text.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["propose", "tiny.py", "--model", "nope"], "nope: no such model directory"),
        (["propose", "tiny.py", "--model", "."], "not a deepphoenix model"),
        (["train", "--source", "tiny.py", "--out", "full"], "exists and is not empty"),
        (["train", "--source", "missing.py", "--out", "m"], "missing.py: no such file"),
        (["train", "--source", "tiny.py", "--out", "m", "--dataset", "bad.jsonl"],
         "bad.jsonl:1: not a refinement pair"),
        (["dataset", "-o", "x.jsonl", "--source", "missing.py"], "no such file"),
        (["propose", "tiny.py", "--model", ".", "--top-p", "0"], "'--top-p'"),
        (["propose", "tiny.py", "--model", ".", "--rounds", "0"], "'--rounds'"),
    ],
)
def test_bad_input(invoke: Invoke, tiny: Path, tmp_path: Path, args: list[str],
                   message: str) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    (tmp_path / "bad.jsonl").write_text("nope\n")
    result = invoke(*args)
    assert result.exit_code in (1, 2)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "m").exists()
