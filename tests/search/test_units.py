from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from deepphoenix.engine import (
    PRESETS,
    BestOfN,
    Greedy,
    RunConfig,
    Scored,
    derive_seed,
    get_strategy,
    preset,
)
from deepphoenix.errors import ConfigError, RunDirError, UnknownNameError
from deepphoenix.store import RunStore


def test_greedy_keeps_the_parent_unless_a_candidate_is_lower() -> None:
    greedy = Greedy()
    best = Scored("p", 2.0)
    assert greedy.parent("p", "s") == "p"
    assert greedy.select(best, [Scored("a", 2.5), Scored("b", None)]) == best
    assert greedy.select(best, [Scored("a", 2.0)]) == best  # ties keep the parent
    assert greedy.select(best, [Scored("a", 1.9), Scored("b", 1.5)]).hash == "b"
    assert greedy.select(Scored("p", None), [Scored("a", 3.0)]).hash == "a"


def test_strategies_follow_the_objective_direction() -> None:
    from deepphoenix.objectives import Direction

    best = Scored("p", 2.0)
    up = Direction.MAXIMIZE
    for strategy in (Greedy(), BestOfN()):
        assert strategy.select(best, [Scored("a", 1.5), Scored("b", 2.5)], up).hash == "b"
        assert strategy.select(best, [Scored("a", 1.5)], up) == best
        assert strategy.select(best, [Scored("a", 1.5), Scored("b", 2.5)]).hash == "a"


def test_best_of_n_always_proposes_from_the_seed() -> None:
    strategy = BestOfN()
    assert strategy.parent("best", "seed") == "seed"
    assert strategy.select(Scored("x", 1.0), [Scored("y", 0.5)]).hash == "y"


def test_strategy_registry() -> None:
    assert isinstance(get_strategy("greedy"), Greedy)
    with pytest.raises(UnknownNameError, match="Did you mean 'greedy'"):
        get_strategy("gredy")


def test_presets_match_the_issue() -> None:
    paper = preset("paper")
    assert (paper.episodes, paper.batches, paper.candidates, paper.fewshot_samples) == (
        10, 8, 8, 1024)
    assert paper.seed_source == "paper"
    assert preset("cpu").seed_source == "tiny" and preset("cpu").proposer == "learned"
    assert paper.proposer == "t5"  # the paper's own proposer reproduces the paper
    assert set(PRESETS) == {"smoke", "cpu", "paper", "gpt-cpu", "quine-cpu"}
    quine = preset("quine-cpu")
    assert (quine.seed_source, quine.grammar, quine.objective, quine.proposer) == (
        "quine-coords", "quine", "self-replication", "tpe")
    gpt = preset("gpt-cpu")
    assert (gpt.seed_source, gpt.grammar, gpt.objective, gpt.task, gpt.proposer) == (
        "gpt", "gpt", "val-loss", "code-lm", "gp")
    assert gpt.proposer_source_spec() == "tiny" and preset("cpu").proposer_source_spec() is None
    with pytest.raises(UnknownNameError, match="Did you mean 'paper'"):
        preset("papr")


@pytest.mark.parametrize(("changes", "message"), [
    ({"episodes": 0}, "episodes=0"), ({"candidates": "8"}, "candidates='8' (type=str)"),
    ({"proposer": "t6"}, "Did you mean 't5'"), ({"top_p": 0}, "top_p"),
    ({"fewshot_samples": 5000}, "more than dataset_size"), ({"timeout": -1.0}, "timeout=-1.0"),
    ({"device": "tpu"}, "Expected auto (CUDA when a GPU is visible, else CPU), cpu, cuda or "
                        "cuda:N but got device='tpu'"), ({"draw_rounds": 0}, "draw_rounds=0"),
    ({"direction": "up"}, "Unknown direction 'up'"), ({"task": "vision"}, "Unknown task"),
    ({"objective": "val-loss", "fewshot_samples": 4096}, "+ heldout_samples=64 is more than"),
])
def test_config_validation(changes: dict, message: str) -> None:
    with pytest.raises((ConfigError, UnknownNameError), match=re.escape(message)):
        RunConfig().with_overrides(**changes)


def test_a_device_is_checked_by_one_rule_everywhere() -> None:
    from deepphoenix.device import check_device

    for good in ("auto", "cpu", "cuda", "cuda:1"):
        assert check_device(good) == good
        assert RunConfig(device=good).device == good
    for bad in ("cuda:", "gpu", "CUDA", 0):
        with pytest.raises(ConfigError):
            check_device(bad)


def test_config_round_trips() -> None:
    config = preset("smoke").with_overrides(seed=7)
    assert RunConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown run config keys: bogus"):
        RunConfig.from_dict({**config.to_dict(), "bogus": 1})


def test_derived_seeds_are_stable_and_distinct() -> None:
    assert derive_seed(0, "propose", 1, 2) == derive_seed(0, "propose", 1, 2)
    assert len({derive_seed(0, "propose", e, b) for e in range(5) for b in range(5)}) == 25
    assert 0 <= derive_seed(123, "x") < 2**31


def test_store_refuses_to_overwrite_and_checks_what_it_opens(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "r", {"a": 1})
    store.close()
    with pytest.raises(RunDirError, match="pass --resume"):
        RunStore.create(tmp_path / "r", {"a": 1})
    with pytest.raises(RunDirError, match="no such run directory"):
        RunStore.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="not a deepphoenix run directory"):
        RunStore.open(tmp_path / "empty")
    reopened = RunStore.open(tmp_path / "r", write=True)
    reopened.set_meta("schema_version", 99)
    reopened.close()
    with pytest.raises(RunDirError, match="schema 99"):
        RunStore.open(tmp_path / "r")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "run.sqlite").write_text("not a database")
    with pytest.raises(RunDirError, match="not a deepphoenix run database"):
        RunStore.open(tmp_path / "junk")


def test_random_baseline_draws_repeats_again_like_the_learned_proposer() -> None:
    from deepphoenix.grammar import load_grammar
    from deepphoenix.mutator import parse_program
    from deepphoenix.outcome import Outcome
    from deepphoenix.proposers import RandomProposer as _RandomAdapter
    from deepphoenix.seeds import seed_source

    tiny = parse_program(seed_source("tiny"), load_grammar("t5"))
    repeats = {1: 0, 4: 0}
    for seed in range(20):
        once = _RandomAdapter(rounds=1).propose(tiny, 8, seed)
        again = _RandomAdapter(rounds=4).propose(tiny, 8, seed)
        for a, b in zip(once, again, strict=True):
            if a.mutation.outcome is not Outcome.DUPLICATE:
                assert a.text == b.text  # only repeated slots are drawn again
        for rounds, batch in ((1, once), (4, again)):
            repeats[rounds] += sum(p.mutation.outcome is Outcome.DUPLICATE for p in batch)
            hashes = [p.mutation.variant.hash for p in batch
                      if p.mutation.ok and p.mutation.variant is not None]
            assert len(hashes) == len(set(hashes))
    assert repeats[1] > 10 and repeats[4] < repeats[1] / 4


def test_random_baseline_skips_variants_the_run_has_met() -> None:
    from deepphoenix.grammar import load_grammar
    from deepphoenix.mutator import parse_program
    from deepphoenix.proposers import RandomProposer as _RandomAdapter
    from deepphoenix.seeds import seed_source

    tiny = parse_program(seed_source("tiny"), load_grammar("t5"))
    first = _RandomAdapter(rounds=4).propose(tiny, 4, seed=3)
    met = {p.mutation.variant.hash for p in first if p.mutation.ok and p.mutation.variant}
    assert met
    again = _RandomAdapter(rounds=4).propose(tiny, 4, seed=3, exclude=met)
    fresh = {p.mutation.variant.hash for p in again if p.mutation.ok and p.mutation.variant}
    assert fresh and not fresh & met


def test_a_read_only_run_directory_can_be_read(tmp_path: Path) -> None:
    """On a read-only mount (a bind mount as root; file modes otherwise) every read-only
    command reads the run; before, they said "not a deepphoenix run database"."""
    import os
    import stat
    import subprocess

    from click.testing import CliRunner

    from deepphoenix.cli import cli
    from deepphoenix.engine import Run, preset

    run = Run(tmp_path / "r", preset("smoke"))  # a run with its seed: best is rendered
    seed = run.dir.seed_program
    with run.store.transaction():
        run.store.add_variant(seed.hash, seed.text, dict(seed.values), 0)
    run.close()
    view = tmp_path / "ro"
    view.mkdir()
    mounted = subprocess.run(
        f"mount --bind {tmp_path / 'r'} {view} && mount -o remount,ro,bind {view}",
        shell=True, capture_output=True).returncode == 0
    if not mounted:
        view = tmp_path / "r"
        os.chmod(view / "run.sqlite", stat.S_IRUSR)
        os.chmod(view, stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(view / "run.sqlite", os.W_OK):
            pytest.skip("neither a read-only bind mount nor file modes could make it read-only")
        with RunStore.open(view) as reopened:
            assert reopened.variant(seed.hash) is not None
        runner = CliRunner()
        assert runner.invoke(cli, ["lineage", "best", str(view)]).stdout == seed.text
        shown = runner.invoke(cli, ["lineage", "show", str(view), "--json"])
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.stdout)["path"][0]["hash"] == seed.hash
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(view)], check=False)
        else:
            os.chmod(view, stat.S_IRWXU)


def test_a_full_disk_names_the_run_database_and_says_what_to_do(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "r", {"episodes": 1})
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")  # what a full disk looks like
    with (pytest.raises(RunDirError, match=r"run\.sqlite: the disk is full .*resume"),
          store.transaction()):
        for i in range(200):
            store.add_variant(f"h{i}", "x = 1\n" * 200, {"x": i}, 0)
    store.close()
