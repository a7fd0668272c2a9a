from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from deepphoenix.grammar import (
    Domain,
    Kind,
    Operator,
    OperatorKind,
    Selector,
    SiteSpec,
    draw_value,
    load_grammar,
    move_value,
    neighbours,
    round_half_up,
)
from deepphoenix.testing import grammars

T5 = load_grammar("t5")


def _spec(name: str) -> SiteSpec:
    return T5.site(name)


def test_round_half_up() -> None:
    assert round_half_up(1331.2) == 1331
    assert round_half_up(2.5) == 3
    assert round_half_up(-2.5) == -3


@given(st.integers(1, 8), st.integers(0, 2**32))
def test_step_moves_by_one_inside_the_domain(value: int, seed: int) -> None:
    new = move_value(_spec("num_layers"), value, random.Random(seed))
    assert new is not None
    assert abs(new - value) == 1 and 1 <= new <= 8


@given(st.integers(64, 4096), st.integers(0, 2**32))
def test_scale_moves_d_ff_by_one_to_fifty_percent(value: int, seed: int) -> None:
    new = move_value(_spec("d_ff"), value, random.Random(seed))
    assert new is not None and 64 <= new <= 4096 and new != value
    assert isinstance(new, int)
    # Some whole percentage p in 1..50 explains the move (after rounding half up).
    assert any(round_half_up(value * (1 + s * p / 100)) == new
               for p in range(1, 51) for s in (-1, 1))


def test_neighbours_enumerate_every_move() -> None:
    assert neighbours(_spec("num_heads"), 1) == (2,)
    assert neighbours(_spec("num_heads"), 8) == (7, 9)
    d_ff = neighbours(_spec("d_ff"), 1024)
    assert d_ff is not None and len(d_ff) == 100 and 1331 in d_ff and 1024 not in d_ff
    rng = random.Random(0)
    seen = {move_value(_spec("d_ff"), 1024, rng) for _ in range(5000)}
    assert seen == set(d_ff)


def test_resample_draws_cover_the_domain() -> None:
    spec = SiteSpec("x", (Selector.parse("name:x"),), Kind.INT, Domain(1, 4),
                    Operator(OperatorKind.RESAMPLE))
    rng = random.Random(0)
    assert Counter(draw_value(spec, rng) for _ in range(400)).keys() == {1, 2, 3, 4}


def test_no_move_returns_none() -> None:
    spec = SiteSpec("x", (Selector.parse("name:x"),), Kind.INT, Domain(3, 3),
                    Operator(OperatorKind.STEP))
    assert move_value(spec, 3, random.Random(0)) is None


@given(grammars(), st.integers(0, 2**32))
def test_moves_of_any_grammar_stay_in_domain(grammar, seed) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    for spec in grammar.proposable:
        start = draw_value(spec, rng)
        assert spec.domain.contains(spec.kind, start)
        new = move_value(spec, start, rng)
        if new is not None:
            assert new != start and spec.domain.contains(spec.kind, new)
