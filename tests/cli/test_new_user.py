"""What a new user tripped on (issue 11, item 4): each fix that can regress."""

from __future__ import annotations

import io
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from deepphoenix.cli import cli
from deepphoenix.cli._progress import EtaEstimate, ProgressBar, Reporter, crossed_quarter
from deepphoenix.errors import RunDirError

LEGACY = Path(__file__).parent.parent / "fixtures" / "legacy_v1" / "partial"


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    target = tmp_path / "legacy"
    shutil.copytree(LEGACY, target)
    return target


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_eta_comes_from_measured_rates_and_a_training_stage_does_not_inflate_it() -> None:
    clock = _Clock()
    eta = EtaEstimate(episodes=2, batches=2, trains_each_episode=True, clock=clock)
    eta.on_episode(1)
    for step in range(0, 101):  # 100 steps at 0.1 s each
        eta.on_training(step, 100)
        clock.now += 0.1
    eta.on_trained()
    assert eta.seconds_left() is None  # no batch timed yet
    eta.on_batch(1, 1)
    clock.now += 20.0
    eta.on_batch_done()
    # 3 batches of 20 s + episode 2's training stage of 100 steps at 0.1 s
    assert eta.seconds_left() == pytest.approx(3 * 20 + 10, rel=0.02)
    eta.on_batch(1, 2)
    clock.now += 20.0
    eta.on_batch_done()
    eta.on_episode(2)
    before = eta.seconds_left()
    for step in range(0, 51):  # half of episode 2's stage; the estimate only shrinks
        eta.on_training(step, 100)
        clock.now += 0.1
        left = eta.seconds_left()
        assert left is not None and before is not None and left <= before + 0.5
        before = left
    assert before == pytest.approx(2 * 20 + 5, rel=0.05)


def test_eta_without_a_training_stage_counts_batches_only() -> None:
    clock = _Clock()
    eta = EtaEstimate(episodes=3, batches=3, trains_each_episode=False, clock=clock)
    eta.on_episode(1)
    eta.on_batch(1, 1)
    clock.now += 5.0
    eta.on_batch_done()
    assert eta.seconds_left() == pytest.approx(8 * 5.0)


@pytest.mark.parametrize(("step", "previous", "crossed"),
                         [(25, 24, True), (26, 25, False), (100, 99, True), (1, 0, False),
                          (60, 10, True)])
def test_quarter_milestones(step: int, previous: int, crossed: bool) -> None:
    assert crossed_quarter(step, 100, previous) is crossed


def test_piped_progress_prints_one_line_per_milestone() -> None:
    stream = io.StringIO()
    reporter = Reporter("line", stream)
    bar = ProgressBar(reporter, "train")
    for step in range(1, 401):
        bar.update(step, 400, loss=1.0)
    assert len(stream.getvalue().splitlines()) == 4


def test_quiet_prints_warnings_only() -> None:
    stream = io.StringIO()
    reporter = Reporter("quiet", stream)
    reporter.status("status", force=True)
    reporter.line("a step")
    reporter.line("warning: careful", warning=True)
    assert stream.getvalue() == "warning: careful\n"


def test_cuda_without_cuda_fails_before_a_run_dir_is_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)
    for args in (["run", "--preset", "smoke", "--device", "cuda", "--run-dir", "r"],
                 ["run", "--preset", "smoke", "--device", "cuda:1"],
                 ["evaluate", "x.py", "--device", "cuda"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, result.output
        assert result.stderr.count("\n") == 1 and "use --device cpu" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_run_dirs_are_named_by_preset_and_proposer(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Path] = []

    def stub(run_dir: Path, *args: Any, **kwargs: Any) -> None:
        made.append(run_dir)
        raise RunDirError("stop here")

    monkeypatch.setattr("deepphoenix.study._search.Run", stub)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["run", "--preset", "smoke", "--proposer", "random"])
    assert result.exit_code == 1
    assert made and made[0].parent == Path("runs")
    assert made[0].name.startswith("smoke-random-")


def test_lineage_show_tells_interrupted_from_running(legacy: Path) -> None:
    result = CliRunner().invoke(cli, ["lineage", "show", str(legacy)])
    assert result.exit_code == 0
    assert result.output.startswith("(run interrupted: best so far; continue it with")
    from deepphoenix.run_lock import RunLock

    lock = RunLock.acquire(legacy, create=False)  # what a running deepphoenix holds
    try:
        result = CliRunner().invoke(cli, ["lineage", "show", str(legacy), "--json"])
    finally:
        lock.release()
    assert '"status": "running"' in result.output


def test_plot_with_nothing_scored_is_a_one_line_error(legacy: Path) -> None:
    with sqlite3.connect(legacy / "run.sqlite") as db:
        db.execute("UPDATE variants SET status = 'pending', mean_loss = NULL")
    result = CliRunner().invoke(cli, ["plot", str(legacy)])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "nothing is scored yet" in result.stderr
    assert not (legacy / "plots").exists()


def _commands(group: click.Group, path: tuple[str, ...] = ()
              ) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, (*path, name))
        else:
            found.append(((*path, name), command))
    return found


def test_every_option_has_help_and_summaries_are_whole() -> None:
    assert isinstance(cli, click.Group)
    for path, command in _commands(cli):
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{' '.join(path)} {param.opts[0]} has no help text"
    for args in ([], ["lineage"]):
        text = CliRunner().invoke(cli, [*args, "--help"]).output
        assert "..." not in text.split("Commands:")[1]


def test_run_help_shows_the_defaults_of_preset_dependent_options() -> None:
    text = "".join(CliRunner().invoke(cli, ["run", "--help"]).output.split())
    assert "[default:perpreset:cpu3,gpt-cpu2,paper10,quine-cpu2,smoke2]" in text
    assert "--memory-limitGB" in text and "--quiet" in text


def test_out_of_memory_reason_says_how_to_raise_the_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    from deepphoenix.evaluator._jobs import _failure

    monkeypatch.setattr(resource, "getrlimit", lambda which: (3 * 2**30, 3 * 2**30))
    reason = _failure("smoke", MemoryError()).reason
    assert reason.startswith("out of memory")
    assert "memory limit is 3.0 GB" in reason and "--memory-limit" in reason


def _invoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.chdir(tmp_path)
    return CliRunner().invoke(cli, list(args))


def test_diff_exit_code_says_whether_every_change_is_grounded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deepphoenix.seeds import seed_source

    (tmp_path / "a.py").write_text(seed_source("paper"))
    (tmp_path / "b.py").write_text(seed_source("paper").replace("num_layers = 2",
                                                                "num_layers = 3"))
    result = _invoke(tmp_path, monkeypatch, "diff", "a.py", "b.py")
    assert result.exit_code == 0 and result.stdout == "num_layers: 2 -> 3\n"


def test_mutate_diff_header_of_an_absolute_path_has_one_slash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deepphoenix.seeds import seed_source

    source = tmp_path / "s.py"
    source.write_text(seed_source("paper"))
    result = _invoke(tmp_path, monkeypatch, "mutate", str(source), "-n", "1")
    assert result.exit_code == 0
    assert f"--- {source}\n" in result.stdout and "a//" not in result.stdout


def test_check_with_an_inferred_grammar_says_what_it_checks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "m.py").write_text("lr = 0.001\nlayers = 4\n")
    result = _invoke(tmp_path, monkeypatch, "check", "m.py", "--grammar", "infer")
    assert result.exit_code == 0
    assert "inferred from this file" in result.stderr


def test_sites_infer_with_no_sites_does_not_suggest_infer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "m.py").write_text("print('hello')\n")
    result = _invoke(tmp_path, monkeypatch, "sites", "m.py", "--grammar", "infer")
    assert result.exit_code == 1
    assert "try --grammar infer" not in result.stderr
    assert result.stderr.startswith("error: --grammar infer finds no literal")


def test_domains_read_short_and_a_derived_site_has_no_infinite_range() -> None:
    from deepphoenix.grammar import Domain, Kind

    assert Domain(low=1e-4 / 10, high=0.1).describe(Kind.LOG_FLOAT) == "1e-05..0.1"
    assert Domain().describe(Kind.INT) == "any value"
    text = CliRunner().invoke(cli, ["grammars", "t5"]).output
    assert "-inf..inf" not in text


def test_propose_with_no_valid_candidate_exits_1(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A file of another grammar than the model's: every sample is rejected."""
    from contextlib import nullcontext

    from deepphoenix.mutator import Mutation
    from deepphoenix.outcome import Outcome
    from deepphoenix.proposers import Proposal
    from deepphoenix.seeds import seed_source

    class Rejecting:
        format = type("F", (), {"value": "source"})()
        last_draws, last_seconds = 2, 0.1

        def propose(self, program: Any, count: int, seed: int) -> list[Proposal]:
            return [Proposal(Mutation(Outcome.UNGROUNDED, "changed a call"), "x")] * count

    monkeypatch.setattr("deepphoenix.cli._learn.Worker", lambda settings: nullcontext())
    monkeypatch.setattr("deepphoenix.cli._learn.T5Sampler.load",
                        lambda *args, **kwargs: Rejecting())
    (tmp_path / "s.py").write_text(seed_source("paper"))
    result = _invoke(tmp_path, monkeypatch, "propose", "s.py", "--model", "m", "-n", "2")
    assert result.exit_code == 1
    assert "0 of 2 candidates valid" in result.stdout
    assert result.stderr.startswith("error: no valid candidate for s.py")
