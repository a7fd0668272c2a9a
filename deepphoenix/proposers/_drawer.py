"""`Drawer`: one source of candidates of a composed proposer (`ComposedProposer`).

A proposer is drawers and a ranker: the drawers make candidates (the T5, Optuna's GP or
TPE sampler, the grammar's random refinements), the ranker picks which of them the batch
evaluates (as drawn, or by a surrogate). A drawer learns from results through `tell`
(the samplers, the T5's hindsight training) and may train once per episode
(`begin_episode`: the T5). Adding one: subclass `Drawer`, override `draw` (and `tell` if
it learns), and name it in a `Composition`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from deepphoenix.mutator import Program
from deepphoenix.proposers._protocol import Observation
from deepphoenix.proposers._records import Proposal

__all__ = ["Drawer"]


class Drawer:
    """The base class of every drawer: `draw` (ask), `tell` (results), with defaults.

    `source` is recorded with each candidate it draws (``attempts.source``; "" where a
    proposer has one drawer). `rounds` is how many draw rounds one batch may take for
    slots that repeat a candidate. `whole_rounds`: every round draws a full batch, not
    just the open slots (a model samples a batch in one call; the extra samples fill more
    of the open slots)."""

    source: str = ""
    rounds: int = 1
    whole_rounds: ClassVar[bool] = False

    @property
    def ready(self) -> bool:
        """Whether it can draw now (a T5 that failed to train cannot)."""
        return True

    @property
    def failure(self) -> str:
        """Why it cannot draw ("" when it can)."""
        return ""

    def begin_episode(self, episode: int, program: Program, seed: int,
                      stored: dict[str, Any] | None) -> dict[str, Any] | None:
        """Train for an episode (`Proposer.begin_episode`); the default trains nothing."""
        return None

    def draw(self, parent: Program, n: int, seed: int, round_: int = 0) -> list[Proposal]:
        """`n` candidates of draw round `round_` of a batch seeded `seed`: round 0 begins
        the batch, a later round continues it (for slots that repeated). Seeded: the same
        rounds give the same candidates. Candidates may be invalid or repeats; the ranker
        sorts them out."""
        raise NotImplementedError(f"{type(self).__name__} does not override draw()")

    def tell(self, observations: Sequence[Observation]) -> None:
        """Results of evaluated candidates (`Proposer.observe`); the default ignores them."""
        return None

    def pending(self, values: Sequence[Mapping[str, Any]]) -> None:
        """Candidates under evaluation (`Proposer.pending`); the default ignores them."""
        return None

    def close(self) -> None:
        """Release what it holds (a worker); called once, at the end."""
        return None
