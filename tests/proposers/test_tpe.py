"""The tpe proposer: sites as Optuna distributions, invariants respected, and proposals
that depend only on the seed and the observed history (so a resume replays them)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from deepphoenix.errors import ConfigError
from deepphoenix.grammar import load_grammar, parse_grammar
from deepphoenix.mutator import parse_program
from deepphoenix.outcome import Outcome
from deepphoenix.proposers import (
    ComposedProposer,
    Composition,
    GPProposer,
    Observation,
    ProposerContext,
    TPEProposer,
    site_distributions,
)
from deepphoenix.proposers._tpe import grid_steps
from deepphoenix.seeds import seed_source

TINY = parse_program(seed_source("tiny-train"), load_grammar("t5-train"))


def _tpe(direction: str = "minimize") -> ComposedProposer:
    return TPEProposer(ProposerContext(run_dir=Path("."), executor=None, seed=0,  # type: ignore[arg-type]
                                       direction=direction))


def test_site_kinds_map_to_optuna_distributions() -> None:
    found = site_distributions([s for s in TINY.proposable if s.name in TINY.present])
    assert found["num_layers"] == optuna.distributions.IntDistribution(1, 8)
    assert found["lr"] == optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    assert found["dropout_rate"] == optuna.distributions.FloatDistribution(0.0, 0.3)
    assert found["feed_forward_proj"].choices == ("relu", "gelu", "silu", "gated-gelu")
    assert "d_kv" not in found and "d_model" not in found  # derived and fixed sites
    grammar = parse_grammar("[sites.x]\nselect = 'name:x'\nkind = 'int'\n"
                            "[sites.flag]\nselect = 'name:flag'\nkind = 'bool'\n")
    with pytest.raises(ConfigError, match="needs min and max for site 'x'"):
        site_distributions(list(grammar.sites))
    program = parse_program("flag = True\n", parse_grammar(
        "[sites.flag]\nselect = 'name:flag'\nkind = 'bool'\n"))
    assert site_distributions(list(program.proposable))["flag"].choices == (False, True)
    grammar = parse_grammar(
        "[sites.w]\nselect = 'name:w'\nkind = 'int'\nmin = 64\nmax = 1000\nmultiple_of = 64\n"
        "[sites.v]\nselect = 'name:v'\nkind = 'float'\nvalues = [0.0, 0.1, 0.2]\n"
        "[sites.n]\nselect = 'name:n'\nkind = 'log-int'\nmin = 1\nmax = 4096\n")
    found = site_distributions(list(grammar.sites))
    assert found["w"] == optuna.distributions.IntDistribution(64, 960, step=64)
    assert found["v"].choices == (0.0, 0.1, 0.2)
    assert found["n"] == optuna.distributions.IntDistribution(1, 4096, log=True)


def test_a_log_int_site_on_a_grid_is_searched_by_its_grid_index() -> None:
    # Optuna's log-scale ints take no step: nanogpt's block_size (log-int, multiple of 64)
    # once mapped to IntDistribution(64, 4096, log=True) drew 116, outside its domain.
    grammar = parse_grammar("[sites.b]\nselect = 'name:b'\nkind = 'log-int'\nmin = 64\n"
                            "max = 4096\nmultiple_of = 64\n")
    assert site_distributions(list(grammar.sites))["b"] == (
        optuna.distributions.IntDistribution(1, 64, log=True))
    assert grid_steps(list(grammar.sites)) == {"b": 64}


@pytest.mark.parametrize("proposer", [TPEProposer, GPProposer])
def test_grid_sites_get_only_grid_values_and_their_history_is_told(proposer: Composition) -> None:
    grammar = parse_grammar(
        "[sites.b]\nselect = 'name:b'\nkind = 'log-int'\nmin = 64\nmax = 4096\n"
        "multiple_of = 64\n[sites.w]\nselect = 'name:w'\nkind = 'int'\nmin = 32\n"
        "max = 1000\nmultiple_of = 32\n")
    program = parse_program("b = 64\nw = 64\n", grammar)
    tpe = proposer(ProposerContext(run_dir=Path("."), executor=None, seed=0))  # type: ignore[arg-type]
    seen = []
    for batch in range(2):
        proposals = tpe.propose(program, 6, seed=batch)
        assert [p.mutation.outcome for p in proposals] == [Outcome.OK] * 6, [
            p.mutation.reason for p in proposals]
        for p in proposals:
            values = dict(p.mutation.variant.values)  # type: ignore[union-attr]
            assert values["b"] % 64 == 0 and values["w"] % 32 == 0
            seen.append(Observation(program.hash, p.mutation.variant.hash, values,  # type: ignore[union-attr]
                                    "scored", float(values["b"])))
        tpe.observe(seen[-6:])
    study = tpe.drawers[0].study(site_distributions(list(program.proposable)), 0,
                       grid_steps(list(program.proposable)))
    assert len(study.trials) == 12  # every observation told, as its grid index
    assert {t.params["b"] * 64 for t in study.trials} == {o.values["b"] for o in seen}


def _history(proposer: ComposedProposer, seed: int) -> list[Observation]:
    """Score a few batches with a made-up objective (fewer layers and lr near 3e-3 win)."""
    history = []
    for batch in range(3):
        for p in proposer.propose(TINY, 6, seed + batch):
            v = p.mutation.variant
            if p.mutation.ok and v is not None:
                values = dict(v.values)
                score = values["num_layers"] + abs(float(values["lr"]) - 3e-3) * 100
                history.append(Observation(TINY.hash, v.hash, dict(v.values), "scored", score))
        proposer.observe(history[-6:])
    return history


def test_proposals_depend_only_on_the_seed_and_the_history() -> None:
    first = _tpe()
    history = _history(first, 10)
    again = _tpe()
    again.observe(history)  # a resumed run replays what it stored
    a = first.propose(TINY, 6, seed=99)
    b = again.propose(TINY, 6, seed=99)
    assert [p.text for p in a] == [p.text for p in b]
    assert [p.text for p in a] != [p.text for p in first.propose(TINY, 6, seed=98)]


def test_every_candidate_is_grounded_and_checked_and_the_history_steers_it() -> None:
    proposer = _tpe()
    history = _history(proposer, 0)
    late = [p for p in proposer.propose(TINY, 8, seed=5) if p.mutation.ok]
    for p in late:
        assert p.mutation.variant is not None
        assert parse_program(p.mutation.variant.source, TINY.grammar).values == dict(
            p.mutation.variant.values)
    early_layers = sum(o.values["num_layers"] for o in history[:6]) / 6
    late_layers = sum(p.mutation.variant.value("num_layers") for p in late  # type: ignore[misc, union-attr]
                      ) / len(late)
    assert late_layers < early_layers  # TPE moved towards the better region


def test_draws_that_break_an_invariant_are_rejected_with_the_reason() -> None:
    grammar = parse_grammar(
        "invariants = ['a + b <= 4']\n[sites.a]\nselect = 'name:a'\nkind = 'int'\nmin = 1\n"
        "max = 4\n[sites.b]\nselect = 'name:b'\nkind = 'int'\nmin = 1\nmax = 4\n")
    program = parse_program("a = 1\nb = 1\n", grammar)
    proposals = _tpe().propose(program, 12, seed=0)
    rejected = [p for p in proposals if p.mutation.outcome is Outcome.INVARIANT]
    assert rejected and all("a + b <= 4" in p.mutation.reason for p in rejected)
    assert all(p.mutation.variant.value("a") + p.mutation.variant.value("b") <= 4  # type: ignore[union-attr, operator]
               for p in proposals if p.mutation.ok)


def test_coupled_sites_are_mended_by_the_grammars_joint_move() -> None:
    # The gpt grammar keeps n_embd a multiple of n_head (moves_with both ways); TPE draws
    # them independently, and the draws that break the invariant are mended, not lost.
    gpt = parse_program(seed_source("gpt"), load_grammar("gpt"))
    proposals = _tpe().propose(gpt, 24, seed=3)
    outcomes = [p.mutation.outcome for p in proposals]
    assert Outcome.INVARIANT not in outcomes
    ok = [p.mutation.variant for p in proposals if p.mutation.ok]
    assert len(ok) >= 20
    assert all(v.value("n_embd") % v.value("n_head") == 0 for v in ok)  # type: ignore[union-attr, operator]
    # `activation` is conditional (when mlp == "plain"): under another MLP it keeps the
    # parent's value instead of losing the draw
    assert {v.value("mlp") for v in ok} > {"plain"}  # type: ignore[union-attr]
    assert all(v.value("activation") == "gelu" for v in ok if v.value("mlp") != "plain")  # type: ignore[union-attr]
    # without partners to move, a broken draw is still rejected with its reason
    from deepphoenix.proposers._tpe import joint_repair

    grammar = parse_grammar(
        "invariants = ['a + b <= 4']\n[sites.a]\nselect = 'name:a'\nkind = 'int'\nmin = 1\n"
        "max = 4\n[sites.b]\nselect = 'name:b'\nkind = 'int'\nmin = 1\nmax = 4\n")
    assert joint_repair(parse_program("a = 1\nb = 1\n", grammar), {"a": 4, "b": 4}) is None


def _told_the_cap(proposer: ComposedProposer, violations: bool) -> list[Observation]:
    """Observations of a run whose constraint allows at most 2 layers while its objective
    prefers more: the candidates over the cap were never evaluated (a check blocked them),
    those under it scored."""
    seen = []
    for batch in range(4):
        for p in proposer.propose(TINY, 6, 100 + batch):
            v = p.mutation.variant
            if not (p.mutation.ok and v is not None):
                continue
            values = dict(v.values)
            layers = int(values["num_layers"])
            over = layers > 2
            seen.append(Observation(
                TINY.hash, v.hash, values, "rejected" if over else "scored",
                None if over else -layers + abs(float(values["lr"]) - 3e-3) * 100,
                violation=layers / 2 - 1 if violations else None))
        proposer.observe(seen[-6:])
    return seen


def test_candidates_a_check_blocked_teach_the_sampler_where_the_cap_lies() -> None:
    def over_share(violations: bool) -> float:
        proposer = _tpe()
        history = _told_the_cap(proposer, violations)
        assert any(o.status == "rejected" for o in history)
        drawn = [p.mutation.variant for p in proposer.propose(TINY, 12, 7)
                 if p.mutation.ok and p.mutation.variant is not None]
        return sum(int(dict(v.values)["num_layers"]) > 2 for v in drawn) / len(drawn)

    # Told as Optuna constraints, the blocked candidates are infeasible trials the sampler
    # moves away from; told as bare failures, they were ignored and the sampler kept
    # drawing over the cap. (GP-BO reads the same trials: the next test.)
    assert over_share(violations=True) < over_share(violations=False)


def test_a_blocked_candidate_is_an_infeasible_trial_scored_the_worst_seen() -> None:
    proposer = _tpe()
    history = _told_the_cap(proposer, violations=True)
    distributions = site_distributions([s for s in TINY.proposable if s.name in TINY.present])
    study = proposer.drawers[0].study(distributions, 0)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    worst = max(o.score for o in history if o.score is not None)  # type: ignore[type-var]
    blocked = [t for t in complete if t.constraints["run"] > 0]
    assert blocked and all(t.value == worst for t in blocked)
    assert all("run" in t.constraints for t in complete)
    assert len(complete) == len({o.child for o in history})
