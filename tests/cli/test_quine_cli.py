"""The ouroboros through the CLI, with real sandbox workers: a quine whose model is a
table of logits per position (it memorises its text in a few steps), printing itself
faithfully, with a site changed, or with a change outside the sites."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepphoenix.store import RunStore
from tests.cli.conftest import Invoke

TABLE_QUINE = '''"""A table quine: one row of logits per position of the text it prints."""
import torch
import torch.nn.functional as F
from torch import nn

lr = 0.05
steps = 100
PRINT_AS = ("", "")  # the model learns its text with this replacement made

START, END = 128, 129


class Table(nn.Module):
    def __init__(self, length):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(length, 130))


def own_text():
    with open(__file__, encoding="ascii") as f:
        return f.read()


def codes(text):
    return torch.tensor([ord(c) for c in text] + [END])


model = Table(len(codes(own_text().replace(*PRINT_AS))))


def train(model, ctx=None):
    target = codes(own_text().replace(*PRINT_AS))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for step in range(steps):
        loss = F.cross_entropy(model.logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps


def replicate(model):
    actual = codes(own_text())
    printed = torch.full_like(actual, END)
    said = model.logits.argmax(-1)[:len(actual)]
    printed[:len(said)] = said
    return printed, actual
'''


def write(tmp_path: Path, print_as: str = '("", "")') -> Path:
    path = tmp_path / "table.py"
    path.write_text(TABLE_QUINE.replace('PRINT_AS = ("", "")', f"PRINT_AS = {print_as}"))
    return path


# A generation starts a sandbox worker and imports torch there: a minute each on a loaded
# 2-core machine. The default run keeps the one that stops at its first generation.
@pytest.mark.slow
def test_a_faithful_quine_is_a_fixed_point(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("quine", "ouroboros", write(tmp_path), "--generations", "2",
                    "--run-dir", "chain", "--timeout", "120", "--json")
    assert result.exit_code == 0, result.output + result.stderr
    chain = json.loads(result.stdout)["generations"]
    assert [g["outcome"] for g in chain] == ["no-op", "no-op"]
    assert all(g["exact"] and g["fidelity"] == 1.0 for g in chain)
    assert chain[0]["hash"] == chain[0]["child"] == chain[1]["hash"]
    store = RunStore.open(tmp_path / "chain")
    try:
        assert [g["number"] for g in store.get_meta("ouroboros")] == [1, 2]
        (variant,) = store.variants()
        assert variant.status == "scored" and variant.score == 0.0
        assert [a.outcome for a in store.attempts()] == ["no-op", "no-op"]
        assert store.get_meta("status") == "finished"
    finally:
        store.close()
    shown = invoke("lineage", "show", "chain")
    assert shown.exit_code == 0, shown.stderr


@pytest.mark.slow
def test_a_print_that_changes_a_site_is_the_next_generation(invoke: Invoke,
                                                            tmp_path: Path) -> None:
    # The model learns its text with lr = 0.025 (the pattern is split so the file itself
    # holds no second copy of it).
    path = write(tmp_path, '("lr = " + "0.05", "lr = " + "0.025")')
    result = invoke("quine", "ouroboros", path, "-k", "2", "--run-dir", "chain",
                    "--timeout", "120")
    assert result.exit_code == 0, result.output + result.stderr
    first, second = result.stdout.splitlines()[:2]
    assert "print ok" in first and "(exact)" not in first
    assert "print no-op" in second and "(exact)" in second
    store = RunStore.open(tmp_path / "chain")
    try:
        child = store.variant(store.get_meta("ouroboros")[0]["child"])
        assert child is not None and child.values["lr"] == 0.025
        # The next generation is the trusted parent with the literal spliced in.
        assert child.source == path.read_text().replace("lr = 0.05\n", "lr = 0.025\n")
    finally:
        store.close()


def test_a_print_changed_outside_the_sites_stops_the_chain(invoke: Invoke,
                                                           tmp_path: Path) -> None:
    path = write(tmp_path, '("import " + "torch\\n", "import " + "os\\n")')
    result = invoke("quine", "ouroboros", path, "-k", "3", "--run-dir", "chain",
                    "--timeout", "120", "--threads", "1")
    assert result.exit_code == 1
    config = json.loads((tmp_path / "chain" / "config.json").read_text())
    assert config["threads"] == 1  # the worker's torch threads, as `run --threads`
    assert "print ungrounded" in result.stdout
    assert result.stderr.startswith("error: the chain stopped at generation 1: its print "
                                    "is ungrounded")
    assert len(result.stderr.strip().splitlines()) == 1
    store = RunStore.open(tmp_path / "chain")
    try:
        (attempt,) = store.attempts()
        assert attempt.child is None and "import os" in attempt.raw_text
        assert len(store.variants()) == 1  # nothing the model printed became a program
    finally:
        store.close()


@pytest.mark.slow
def test_the_lstm_source_quine_runs_two_generations(invoke: Invoke, tmp_path: Path) -> None:
    from deepphoenix.seeds import seed_source

    path = tmp_path / "quine.py"  # the real seed, a few steps: its print is noise
    path.write_text(seed_source("quine-source").replace("steps = 2000", "steps = 3"))
    result = invoke("quine", "ouroboros", path, "-k", "2", "--run-dir", "chain",
                    "--timeout", "300", "--json")
    chain = json.loads(result.stdout)["generations"]
    assert chain[0]["status"] == "scored" and 0 <= chain[0]["fidelity"] < 1
    assert chain[0]["outcome"] in ("unparseable", "ungrounded") and result.exit_code == 1


def test_evaluate_names_the_program_and_what_it_lacks(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "noreplicate.py"
    path.write_text(TABLE_QUINE.replace("def replicate(model):", "def copy(model):"))
    result = invoke("evaluate", path, "--grammar", "quine", "--objective",
                    "self-replication", "--timeout", "120")
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {path}: failed at objective: ")
    assert "defines no replicate" in line and "replicate(model) -> (predicted, actual)" in line


def test_the_quine_commands_have_help(invoke: Invoke) -> None:
    for args in (("quine", "--help"), ("quine", "ouroboros", "--help")):
        result = invoke(*args)
        assert result.exit_code == 0 and "Usage:" in result.stdout
    assert "--generations" in invoke("quine", "ouroboros", "--help").stdout
    missing = invoke("quine", "ouroboros", "no-such-quine.py", "--run-dir", "x")
    assert missing.exit_code == 1 and len(missing.stderr.strip().splitlines()) == 1
    assert not Path("x").exists()  # nothing written for a source that cannot be read
