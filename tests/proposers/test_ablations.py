"""The baselines and ablations of the learned proposer: ``gp`` (Optuna's GP-BO with the
tpe proposer's mending), ``random-gp`` and ``random-gp-multi`` (the grammar's draws ranked
by the learned proposer's surrogate) and ``t5-only`` (its T5 without the ranking)."""

from __future__ import annotations

from pathlib import Path

from deepphoenix.grammar import load_grammar, parse_grammar
from deepphoenix.mutator import parse_program
from deepphoenix.outcome import Outcome
from deepphoenix.proposers import (
    T5_SITES_CHANGED,
    AsDrawn,
    Composition,
    GPProposer,
    GrammarDrawer,
    HindsightProposer,
    HindsightTraining,
    Observation,
    ProposerContext,
    ProposerData,
    RandomGPMultiProposer,
    RandomGPProposer,
    T5Drawer,
    T5OnlyProposer,
    proposer_factory,
)
from deepphoenix.seeds import seed_source
from tests.proposers.test_tpe import TINY


def _ctx(direction: str = "minimize") -> ProposerContext:
    return ProposerContext(run_dir=Path("."), executor=None, seed=0,  # type: ignore[arg-type]
                           direction=direction)


def _score(values: dict[str, object]) -> float:
    """A made-up objective: fewer layers and lr near 3e-3 win."""
    return float(values["num_layers"]) + abs(float(values["lr"]) - 3e-3) * 100  # type: ignore[arg-type]


def test_the_ablations_are_registered_under_their_names() -> None:
    assert proposer_factory("gp") is GPProposer
    assert proposer_factory("random-gp") is RandomGPProposer
    assert proposer_factory("random-gp-multi") is RandomGPMultiProposer
    assert proposer_factory("t5-only") is T5OnlyProposer
    assert T5OnlyProposer.needs_refinement_data and T5OnlyProposer.accepts_init


def test_t5_only_is_a_row_of_configuration_not_a_subclass(tmp_path: Path) -> None:
    # t5-only is the learned proposer's T5 (hindsight training, fallback) ranked as drawn
    assert isinstance(T5OnlyProposer, Composition) and not isinstance(T5OnlyProposer, type)

    class NoLane:  # nothing runs: the proposer is only built
        def lane(self, name: str) -> object:
            return object()

    data = ProposerData(tmp_path / "tokenizer.json", tmp_path / "tokens.json", "edits",  # type: ignore[arg-type]
                        400, 0, 0.0, 0.0, view=1)
    ctx = ProposerContext(run_dir=tmp_path, executor=NoLane(), seed=0, data=data)  # type: ignore[arg-type]
    only, learned = T5OnlyProposer(ctx), HindsightProposer(ctx)
    assert type(only) is type(learned)  # one class, two configurations
    [t5] = only.drawers
    assert isinstance(t5, T5Drawer) and isinstance(t5.training, HindsightTraining)
    assert isinstance(only.ranker, AsDrawn) and t5.source == ""
    assert [d.source for d in learned.drawers] == ["t5", "gp", "draw"]
    assert only.name == "t5-only" and learned.name == "learned"


SMALL = parse_program("a = 12\nb = 0.9\n", parse_grammar(
    "[sites.a]\nselect = 'name:a'\nkind = 'int'\nmin = 1\nmax = 16\n"
    "[sites.b]\nselect = 'name:b'\nkind = 'float'\nmin = 0.0\nmax = 1.0\n"))


def _small_score(values: dict[str, object]) -> float:
    return (float(values["a"]) - 3) ** 2 + 10 * (float(values["b"]) - 0.2) ** 2  # type: ignore[arg-type]


def test_gp_proposals_depend_only_on_the_seed_and_the_history() -> None:
    first = GPProposer(_ctx())
    history = []
    for batch in range(2):  # 12 observations: past GPSampler's 10 random ones
        for p in first.propose(SMALL, 6, seed=10 + batch):
            v = p.mutation.variant
            assert p.mutation.ok and v is not None
            history.append(Observation(SMALL.hash, v.hash, dict(v.values), "scored",
                                       _small_score(dict(v.values))))
        first.observe(history[-6:])
    again = GPProposer(_ctx())
    again.observe(history)  # a resumed run replays what it stored
    a = first.propose(SMALL, 3, seed=99)
    assert [p.text for p in a] == [p.text for p in again.propose(SMALL, 3, seed=99)]
    assert [p.text for p in a] != [p.text for p in first.propose(SMALL, 3, seed=98)]
    late = [p.mutation.variant for p in a if p.mutation.ok]
    assert len(late) == 3 and len({v.hash for v in late}) == 3  # type: ignore[union-attr]
    # the fitted GP proposes where the made-up objective is low
    early = sorted(o.score for o in history)[len(history) // 2]  # type: ignore[type-var]
    assert min(_small_score(dict(v.values)) for v in late) < early  # type: ignore[union-attr]


def test_gp_mends_coupled_sites_as_tpe_does() -> None:
    gpt = parse_program(seed_source("gpt"), load_grammar("gpt"))
    proposals = GPProposer(_ctx()).propose(gpt, 12, seed=3)  # GPSampler's random start
    assert Outcome.INVARIANT not in [p.mutation.outcome for p in proposals]
    ok = [p.mutation.variant for p in proposals if p.mutation.ok]
    assert len(ok) >= 10
    assert all(v.value("n_embd") % v.value("n_head") == 0 for v in ok)  # type: ignore[union-attr, operator]


def _changed(proposal: object) -> int:
    variant = proposal.mutation.variant  # type: ignore[attr-defined]
    names = {spec.name for spec in TINY.proposable}
    return sum(1 for edit in variant.changes if edit.site in names)


def test_random_gp_ranks_the_grammars_draws_by_the_surrogate() -> None:
    proposer = RandomGPProposer(_ctx())
    cold = proposer.propose(TINY, 4, seed=1)
    assert all(p.mutation.ok for p in cold)
    assert {_changed(p) for p in cold} == {1}  # one site per draw
    history = []
    for batch in range(4):
        for p in proposer.propose(TINY, 4, seed=10 + batch):
            v = p.mutation.variant
            assert v is not None
            history.append(Observation(TINY.hash, v.hash, dict(v.values), "scored",
                                       _score(dict(v.values))))
        proposer.observe(history[-4:])
    again = RandomGPProposer(_ctx())
    again.observe(history)
    ranked = proposer.propose(TINY, 4, seed=77)
    assert [p.text for p in ranked] == [p.text for p in again.propose(TINY, 4, seed=77)]
    # ranked against the draw's own order: the surrogate prefers what the objective does
    unranked = RandomGPProposer(_ctx()).propose(TINY, 4, seed=77)
    assert [p.text for p in ranked] != [p.text for p in unranked]
    assert (sum(_score(dict(p.mutation.variant.values)) for p in ranked)  # type: ignore[union-attr]
            < sum(_score(dict(p.mutation.variant.values)) for p in unranked))  # type: ignore[union-attr]


def test_random_gp_multi_changes_as_many_sites_as_the_t5() -> None:
    proposer = RandomGPMultiProposer(_ctx())
    import random

    rng = random.Random(0)
    [drawer] = proposer.drawers
    assert isinstance(drawer, GrammarDrawer)
    draws = [drawer.one(TINY, rng) for _ in range(400)]
    assert all(p.mutation.ok for p in draws)
    counts = [_changed(p) for p in draws]
    shares = [counts.count(k) / len(counts) for k in (1, 2, 3)]
    assert set(counts) == {1, 2, 3}
    for share, wanted in zip(shares, T5_SITES_CHANGED, strict=True):
        assert abs(share - wanted) < 0.08, (shares, T5_SITES_CHANGED)
