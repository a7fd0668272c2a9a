"""What a resume depends on stays inside the run directory, and one run directory serves
one process at a time: working directory, grammar files, config keys added later, a kill
between writes, a second process."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from deepphoenix.engine import Run, RunConfig, prepare_run_data, preset
from deepphoenix.engine._rundir import _stored_config
from deepphoenix.errors import GrammarError, RunDirError
from deepphoenix.executor import ExecutorSettings, LocalExecutor
from deepphoenix.grammar import load_grammar
from deepphoenix.mutator import parse_program
from deepphoenix.proposers import PaperT5Proposer, ProposerContext, ProposerData
from deepphoenix.proposers._t5_drawer import report_from_checkpoint
from deepphoenix.seeds import seed_source

SMOKE = preset("smoke")


def test_a_resume_from_another_working_directory_finds_the_data(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    monkeypatch.chdir(first)
    run = Run(Path("runs/x"), SMOKE)  # relative, as `deepphoenix run` makes it
    made = prepare_run_data(run.run_dir / "data", run.config, run.dir.seed_program, True).proposer
    run.close()
    assert made is not None
    stored = json.loads((first / "runs/x/data/data.json").read_text())
    assert not Path(stored["tokens_path"]).is_absolute()
    monkeypatch.chdir(second)
    again = Run(first / "runs/x", resume=True)
    data = prepare_run_data(again.run_dir / "data", again.config, again.dir.seed_program,
                            True).proposer
    again.close()
    assert data is not None
    assert data.tokens_path == first / "runs/x/data/tokens.json"
    assert data.tokens_path.is_file() and data.tokenizer_path.is_file()
    assert data.tokens_path.read_bytes() == made.tokens_path.read_bytes()


def test_a_run_directory_serves_one_process_at_a_time(tmp_path: Path) -> None:
    run = Run(tmp_path / "r", SMOKE)
    with pytest.raises(RunDirError, match="in use by a running deepphoenix"):
        Run(tmp_path / "r", resume=True)
    run.close()
    Run(tmp_path / "r", resume=True).close()  # released on close


def test_bad_input_leaves_no_run_directory(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 'x'\n[sites.d_ff]\nkind = 'integer'\n")
    with pytest.raises(GrammarError):
        Run(tmp_path / "r", SMOKE.with_overrides(grammar=str(bad)))
    assert not (tmp_path / "r").exists()


def test_a_grammar_file_is_kept_in_the_run(tmp_path: Path) -> None:
    grammar = tmp_path / "mine.toml"
    text = (resources.files("deepphoenix.grammar") / "builtin" / "t5.toml").read_text()
    grammar.write_text(text.replace("max = 8", "max = 6", 1))
    run = Run(tmp_path / "r", SMOKE.with_overrides(grammar=str(grammar)))
    before = run.dir.grammar.to_dict()["sites"]
    run.close()
    grammar.write_text("this is no longer a grammar")
    again = Run(tmp_path / "r", resume=True)
    assert again.dir.grammar.to_dict()["sites"] == before
    assert before != load_grammar("t5").to_dict()["sites"]  # the file's, not the built-in
    again.close()


def test_config_keys_added_later_keep_the_old_behaviour() -> None:
    old = {k: v for k, v in SMOKE.to_dict().items() if k != "draw_rounds"}
    assert _stored_config(old).draw_rounds == 1
    assert _stored_config(SMOKE.to_dict()).draw_rounds == RunConfig().draw_rounds == 4
    with pytest.raises(RunDirError):
        _stored_config(None)


def test_a_curve_is_rebuilt_from_a_checkpoint_saved_just_before_a_kill(tmp_path: Path) -> None:
    (tmp_path / "proposer.json").write_text(json.dumps({
        "format": "source", "params": 123, "mean_loss": 2.0, "final_loss": 1.0, "steps": 3,
        "seconds": 0.5, "device": "cpu", "stopped": False}))
    (tmp_path / "losses.json").write_text(json.dumps([3.0, 2.0, 1.0]))
    report = report_from_checkpoint(tmp_path)
    assert report["losses"] == [3.0, 2.0, 1.0] and report["steps"] == 3
    assert report["params"] == 123 and report["sum_loss"] == 6.0


def test_a_training_that_failed_stays_failed_on_resume(tmp_path: Path) -> None:
    # No worker starts: the stored failure decides, as it did before the interruption.
    executor = LocalExecutor(ExecutorSettings())
    data = ProposerData(tmp_path / "tokenizer.json", tmp_path / "tokens.json", "source",  # type: ignore[arg-type]
                        400, 0, 0.0, 0.0)
    adapter = PaperT5Proposer(ProposerContext(run_dir=tmp_path, executor=executor, seed=0,
                                              data=data))
    tiny = parse_program(seed_source("tiny"), load_grammar("t5"))
    stored = {"failed": "out of memory", "losses": []}
    assert adapter.begin_episode(1, tiny, 0, stored) is stored
    proposals = adapter.propose(tiny, 3, seed=1)
    assert adapter.name == "random-fallback" and adapter.failure == "out of memory"
    assert len(proposals) == 3 and not executor.lane("proposer").alive  # type: ignore[attr-defined]
    adapter.close()
    executor.close()


def test_a_run_killed_before_its_seed_was_stored_says_so(tmp_path: Path) -> None:
    from deepphoenix.store import RunStore

    RunStore.create(tmp_path / "r", SMOKE.to_dict()).close()  # no seed_text
    with pytest.raises(RunDirError, match="stopped before its seed was stored"):
        Run(tmp_path / "r", resume=True)


def test_a_stored_config_that_cannot_run_is_refused_before_anything_runs() -> None:
    with pytest.raises(RunDirError, match=r"stored run config cannot run here: .*timeout=1e"):
        _stored_config({**SMOKE.to_dict(), "timeout": 1e300})


def test_deleting_the_lock_file_does_not_let_a_second_process_in(tmp_path: Path) -> None:
    run = Run(tmp_path / "r", SMOKE)
    (tmp_path / "r" / ".lock").unlink()
    with pytest.raises(RunDirError, match="in use by a running deepphoenix"):
        Run(tmp_path / "r", resume=True)
    from deepphoenix.lineage import run_state

    assert run_state(tmp_path / "r", "running") == "running"
    run.close()
    assert run_state(tmp_path / "r", "running") == "interrupted"


def test_a_run_database_that_lost_its_log_says_so(tmp_path: Path) -> None:
    import sqlite3

    from deepphoenix.store import RunStore

    RunStore.create(tmp_path / "r", SMOKE.to_dict()).close()
    with sqlite3.connect(tmp_path / "r" / "run.sqlite") as db:
        db.execute("DELETE FROM meta")  # what a lost WAL leaves: tables, no rows
    with pytest.raises(RunDirError, match=r"schema version is missing.*run\.sqlite-wal"):
        RunStore.open(tmp_path / "r")


def test_a_run_resumes_with_fewer_workers_or_another_memory_limit(tmp_path: Path) -> None:
    import os

    Run(tmp_path / "r", SMOKE.with_overrides(workers=2)).close()
    again = Run(tmp_path / "r", resume=True, placement={"workers": 1, "memory_limit_gb": 4.0})
    assert (again.config.workers, again.config.memory_limit_gb) == (1, 4.0)
    if (os.cpu_count() or 1) > 1:  # threads per worker change: the resume says so
        assert any("threads" in w for w in again.dir.warnings)
    again.close()
    from deepphoenix.errors import ConfigError

    with pytest.raises(ConfigError, match="keeps its stored config; drop episodes"):
        Run(tmp_path / "r", resume=True, placement={"episodes": 9})
