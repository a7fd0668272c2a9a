"""Summaries of a run's rows: each drawer's share of ``learned``'s pool and its wins."""

from __future__ import annotations

from deepphoenix.lineage import describe_sources, source_counts
from deepphoenix.objectives import Direction
from deepphoenix.status import VariantStatus
from deepphoenix.store import AttemptRow, VariantRow


def _variant(name: str, score: float | None, at: float,
             status: VariantStatus = VariantStatus.SCORED) -> VariantRow:
    return VariantRow(hash=name, source="", values={}, status=status, stage="", reason="",
                      traceback="", score=score, metrics={}, first_episode=1,
                      created_at=0.0, scored_at=at)


def _attempt(slot: int, child: str | None, source: str) -> AttemptRow:
    return AttemptRow(id=slot, episode=1, batch=0, slot=slot, parent="seed", child=child,
                      proposer="learned", outcome="ok", reason="", edits=[], raw_text="",
                      source=source)


def test_each_drawer_is_counted_with_the_wins_it_brought() -> None:
    variants = [_variant("seed", 3.0, 1.0), _variant("a", 2.5, 2.0), _variant("b", 2.8, 3.0),
                _variant("c", 2.0, 4.0), _variant("d", None, 5.0, VariantStatus.FAILED),
                _variant("e", 1.5, 6.0)]
    attempts = [_attempt(0, "a", "t5"), _attempt(1, "b", "gp"), _attempt(2, "c", "gp"),
                _attempt(3, "d", "draw"), _attempt(4, "e", "t5"), _attempt(5, None, "t5")]
    counts = {c.source: c for c in source_counts(variants, attempts, Direction.MINIMIZE)}
    # a (2.5 < 3.0) and e (1.5) won for t5; c (2.0) for gp; b did not beat 2.5; d failed
    assert {s: (c.proposed, c.scored, c.wins) for s, c in counts.items()} == {
        "t5": (2, 2, 2), "gp": (2, 2, 1), "draw": (1, 0, 0)}
    assert describe_sources([counts["gp"]]) == "gp 2 proposed, 2 scored, 1 win"
    maximized = {c.source: c.wins for c in source_counts(variants, attempts,
                                                          Direction.MAXIMIZE)}
    assert maximized == {"t5": 0, "gp": 0, "draw": 0}  # nothing beat the seed's 3.0


def test_a_proposer_with_one_drawer_has_no_sources() -> None:
    variants = [_variant("seed", 3.0, 1.0), _variant("a", 2.5, 2.0)]
    assert source_counts(variants, [_attempt(0, "a", "")], Direction.MINIMIZE) == []
