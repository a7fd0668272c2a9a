"""Proposers as composition: drawers (the grammar's refinements, Optuna's TPE and GP
samplers, the T5) and rankers (as drawn, surrogate), each tried alone, and every built-in
proposer a configuration of them."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import pytest

from deepphoenix.errors import ConfigError
from deepphoenix.grammar import parse_grammar
from deepphoenix.mutator import Program, parse_program
from deepphoenix.proposers import (
    AsDrawn,
    ComposedProposer,
    Composition,
    Drawer,
    GPDrawer,
    GrammarDrawer,
    Observation,
    Proposal,
    ProposerContext,
    RandomProposer,
    Refiner,
    SurrogateRanker,
    TPEDrawer,
    get_proposer,
    proposer_factory,
    proposer_names,
    register_proposer,
    unregister_proposer,
)
from deepphoenix.proposers._protocol import PROPOSERS

SMALL = parse_program("a = 12\nb = 0.5\nc = 'relu'\n", parse_grammar(
    "[sites.a]\nselect = 'name:a'\nkind = 'int'\nmin = 1\nmax = 16\n"
    "[sites.b]\nselect = 'name:b'\nkind = 'float'\nmin = 0.0\nmax = 1.0\n"
    "[sites.c]\nselect = 'name:c'\nkind = 'categorical'\nchoices = ['relu', 'gelu', 'tanh']\n"))


def _ctx() -> ProposerContext:
    return ProposerContext(run_dir=Path("."), executor=None, seed=0)  # type: ignore[arg-type]


def _in_domain(proposal: Proposal) -> bool:
    variant = proposal.mutation.variant
    if not proposal.mutation.ok or variant is None:
        return False
    values = dict(variant.values)
    return (1 <= values["a"] <= 16 and 0.0 <= values["b"] <= 1.0  # type: ignore[operator]
            and values["c"] in ("relu", "gelu", "tanh") and values != SMALL.values)


def _texts(proposals: Sequence[Proposal]) -> list[str]:
    return [p.text for p in proposals]


@pytest.mark.parametrize("make", [lambda: GrammarDrawer(), lambda: TPEDrawer(),
                                  lambda: GPDrawer()], ids=["grammar", "tpe", "gp"])
def test_each_drawer_alone_draws_n_in_domain_candidates_fixed_by_the_seed(make: object) -> None:
    drawer = make()  # type: ignore[operator]
    first = drawer.draw(SMALL, 6, seed=3)
    assert len(first) == 6 and all(_in_domain(p) for p in first), _texts(first)
    assert _texts(make().draw(SMALL, 6, seed=3)) == _texts(first)  # type: ignore[operator]
    assert _texts(make().draw(SMALL, 6, seed=4)) != _texts(first)  # type: ignore[operator]
    # a later round continues the batch (new candidates), a new batch starts it again
    later = drawer.draw(SMALL, 6, seed=3, round_=1)
    assert len(later) == 6 and _texts(later) != _texts(first)
    assert _texts(make().draw(SMALL, 12, seed=3)) == _texts(first + later)  # type: ignore[operator]
    assert _texts(drawer.draw(SMALL, 6, seed=3)) == _texts(first)


def test_the_grammar_drawer_moves_one_site_and_names_its_source() -> None:
    drawn = GrammarDrawer(source="draw").draw(SMALL, 20, seed=0)
    assert {p.source for p in drawn} == {"draw"}
    assert all(len(p.mutation.variant.changes) == 1 for p in drawn)  # type: ignore[union-attr]


def test_the_optuna_drawers_learn_from_what_they_are_told() -> None:
    drawer = TPEDrawer()
    drawn = drawer.draw(SMALL, 12, seed=0)  # past TPE's ten random start-up trials
    told = [Observation(SMALL.hash, p.mutation.variant.hash,  # type: ignore[union-attr]
                        dict(p.mutation.variant.values),  # type: ignore[union-attr]
                        "scored", float(dict(p.mutation.variant.values)["a"]))  # type: ignore[union-attr, arg-type]
            for p in drawn]
    drawer.tell(told)
    assert len(drawer.study({}, 0).trials) == 12
    assert _texts(drawer.draw(SMALL, 4, seed=1)) != _texts(TPEDrawer().draw(SMALL, 4, seed=1))


class Listed(Drawer):
    """A drawer of fixed values of `a` (a test's own)."""

    def __init__(self, values: Sequence[int], source: str = "") -> None:
        self.values, self.source, self.told = list(values), source, 0

    def draw(self, parent: Program, n: int, seed: int, round_: int = 0) -> list[Proposal]:
        return [Proposal(parent.apply({"a": a}), f"a={a}", self.source)
                for a in self.values[:n]]

    def tell(self, observations: Sequence[Observation]) -> None:
        self.told += len(observations)


def _seen(a: int, score: float) -> Observation:
    values = {**SMALL.values, "a": a}
    return Observation(SMALL.hash, f"v{a}", values, "scored", score)


def test_the_surrogate_ranker_alone_picks_what_it_expects_to_improve() -> None:
    ranker = SurrogateRanker()
    drawers = [Listed([16, 15, 14, 2, 3, 1])]
    # before three are scored: the pool in the order drawn
    assert _texts(ranker.select(SMALL, 2, 0, (), drawers)) == ["a=16", "a=15"]
    ranker.tell([_seen(a, float(a)) for a in (4, 8, 12, 13)])  # smaller a scored better
    picked = ranker.select(SMALL, 2, 0, (), drawers)
    assert set(_texts(picked)) <= {"a=1", "a=2", "a=3"}, _texts(picked)
    maximized = SurrogateRanker("maximize")
    maximized.tell([_seen(a, float(a)) for a in (4, 8, 12, 13)])
    assert maximized.select(SMALL, 2, 0, (), drawers)[0].text in {"a=14", "a=15", "a=16"}


def test_the_surrogate_ranker_adds_each_companions_new_candidates_to_the_pool() -> None:
    ranker = SurrogateRanker()
    ranker.tell([_seen(a, float(a)) for a in (4, 8, 12, 13)])
    lead, companion = Listed([16, 15, 14], "lead"), Listed([15, 1, 2], "other")
    picked = ranker.select(SMALL, 2, 0, (), [lead, companion])
    assert picked[0].source == "other" and picked[0].text in {"a=1", "a=2"}, _texts(picked)
    pool = ranker.companions(SMALL, 3, 0, {SMALL.apply({"a": 2}).variant.hash},  # type: ignore[union-attr]
                             [companion])
    assert _texts(pool) == ["a=15", "a=1"]  # the excluded variant left out


def test_the_as_drawn_ranker_keeps_the_order_and_takes_one_drawer() -> None:
    drawer = Listed([5, 6, 7, 8])
    assert _texts(AsDrawn().select(SMALL, 3, 0, (), [drawer])) == ["a=5", "a=6", "a=7"]
    with pytest.raises(ConfigError, match="one drawer"):
        AsDrawn().select(SMALL, 3, 0, (), [drawer, drawer])


def test_every_builtin_proposer_is_a_composition() -> None:
    for name in PROPOSERS.builtin_names():
        composition = proposer_factory(name)
        assert isinstance(composition, Composition) and composition.name == name
        if not composition.needs_refinement_data:  # the T5 ones need a run's data
            built = get_proposer(name, _ctx())
            assert type(built) is ComposedProposer and built.name == name


def test_a_composition_of_ones_own_parts_is_a_proposer_of_the_run() -> None:
    mine = Composition("test-mine", (lambda ctx: Listed([3, 3, 9]),
                                     lambda ctx: Listed([7], "seven")),
                       lambda ctx: SurrogateRanker(ctx.direction))
    register_proposer("test-mine", mine)
    try:
        assert "test-mine" in proposer_names()
        proposer = get_proposer("test-mine", _ctx())
        exclude: Collection[str] = ()
        drawn = proposer.propose(SMALL, 2, seed=0, exclude=exclude)
        assert _texts(drawn) == ["a=3", "a=9"]  # the repeat of a=3 is not drawn twice
        proposer.observe([_seen(3, 1.0)])
        assert [d.told for d in proposer.drawers] == [1, 1]  # type: ignore[attr-defined]
    finally:
        unregister_proposer("test-mine")


def test_random_is_the_proposer_named_for_it_and_the_refiner_is_not_a_proposer() -> None:
    assert proposer_factory("random") is RandomProposer
    proposer = RandomProposer(_ctx())
    assert isinstance(proposer, ComposedProposer) and proposer.name == "random"
    [drawer] = proposer.drawers
    assert isinstance(drawer, GrammarDrawer) and isinstance(drawer.refiner, Refiner)
    assert not hasattr(Refiner, "begin_episode")  # the operator, not a Proposer
    with pytest.raises(TypeError, match=r"Refiner\(max_edits\)"):
        RandomProposer(2)  # type: ignore[arg-type]  # the operator's old spelling


def test_the_t5_drawer_samples_a_seeded_batch_a_round_and_prepares_once(tmp_path: Path) -> None:
    from deepphoenix.errors import WorkerError
    from deepphoenix.proposers import HindsightTraining, ProposerData, T5Drawer
    from deepphoenix.proposers._distinct import round_seed

    class NoLane:  # nothing runs in a worker: the model below is the test's own
        def lane(self, name: str) -> object:
            return object()

    class Model:  # stands for a trained T5Sampler: what the drawer asks of one
        def __init__(self) -> None:
            self.prepared = 0
            self.asked: list[tuple[int, int]] = []

        def prepare(self, parent: Program) -> object:
            self.prepared += 1
            return object()

        def sample_texts(self, parent: Program, n: int, seed: int, prepared: object) -> list[str]:
            self.asked.append((n, seed))
            return [f"a={1 + (seed + i) % 16}" for i in range(n)]

        def ground(self, parent: Program, text: str) -> object:
            return parent.apply({"a": int(text[2:])})

    data = ProposerData(tmp_path / "t.json", tmp_path / "k.json", "edits",  # type: ignore[arg-type]
                        400, 0, 0.0, 0.0, view=1)
    ctx = ProposerContext(run_dir=tmp_path, executor=NoLane(), seed=0, data=data)  # type: ignore[arg-type]
    drawer = T5Drawer(ctx, HindsightTraining(), "learned", source="t5")
    assert not drawer.ready
    with pytest.raises(WorkerError):
        drawer.draw(SMALL, 2, seed=1)
    model = Model()
    drawer.model = model  # type: ignore[assignment]
    first = drawer.draw(SMALL, 3, seed=7)
    later = drawer.draw(SMALL, 3, seed=7, round_=2)
    assert model.asked == [(3, 7), (3, round_seed(7, 2))] and model.prepared == 1
    assert {p.source for p in first + later} == {"t5"} and all(p.mutation.ok for p in first)
    assert drawer.whole_rounds and drawer.rounds == ctx.sampling.rounds
