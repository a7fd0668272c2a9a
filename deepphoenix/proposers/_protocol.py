"""The proposer seam: the `Proposer` base class (ask/tell with defaults), what a proposer
is given, and the registry.

A proposer is made once per run by a factory ``factory(ctx: ProposerContext) -> Proposer``
(a subclass is a factory; whatever a factory makes must be a `Proposer`). Built-ins
register in code; third parties register a factory under the ``deepphoenix.proposers``
entry-point group. Per episode the loop calls
`begin_episode` (a learned proposer trains here), then per batch `propose` (ask) and, once
the batch is scored, `observe` (tell). A proposer keeps no state that only lives in
memory: on resume the loop replays every stored observation through `observe` before the
first new batch, and `begin_episode` gets the training report an earlier start stored,
so a resumed run proposes what an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from deepphoenix.errors import ConfigError
from deepphoenix.executor import Executor
from deepphoenix.mutator import Program
from deepphoenix.objectives import Direction
from deepphoenix.proposers._records import Proposal, ProposerData, SampleSettings, TrainSettings
from deepphoenix.registry import Registry

__all__ = ["ENTRY_POINT_GROUP", "Observation", "Proposer", "ProposerContext",
           "ProposerFactory", "accepts_init", "get_proposer", "needs_refinement_data",
           "proposer_factory", "proposer_names", "reads_program_view", "register_proposer",
           "unregister_proposer"]

ENTRY_POINT_GROUP = "deepphoenix.proposers"


@dataclass(frozen=True, slots=True)
class Observation:
    """A scored (or failed) candidate: what a proposer learns from."""

    parent: str
    child: str
    values: dict[str, Any]
    status: str  # scored | failed | rejected | pruned (stopped early, --fidelity asha)
    score: float | None  # None unless scored (a full evaluation)
    rung: int | None = None  # asha: the rung this result is from (None: full fidelity)
    rung_score: float | None = None  # asha: the score at that rung (None: failed)
    # How far past the run's constraints (--max-params, --constraint) the candidate is:
    # > 0 broken (it was never evaluated), <= 0 within; None when the run has none.
    # --max-params counts log(params / max_params); a user constraint 1 (broken) or -1.
    violation: float | None = None


@dataclass(frozen=True, slots=True)
class ProposerContext:
    """What a proposer is given when a run makes it."""

    run_dir: Path
    executor: Executor
    seed: int  # the run seed
    direction: Direction = Direction.MINIMIZE  # the objective's
    draw_rounds: int = 4  # draws per batch for slots that repeat a candidate
    data: ProposerData | None = None  # the refinement data (learned proposers; of views
    #                                   for those that read the program view)
    sampling: SampleSettings = field(default_factory=SampleSettings)
    training: TrainSettings = field(default_factory=TrainSettings)
    train_timeout: float | None = None
    proposer_source: str | None = None  # the T5 that proposes; None: the program itself
    proposer_init: Path | None = None  # a pretrained proposer model to start from
    seed_source: str | None = None  # the run's seed program (the text evolution starts from)
    emit: Callable[[str, dict[str, Any]], None] = lambda kind, fields: None

    def __post_init__(self) -> None:
        # A `Direction` in memory, whatever the caller passed ("maximize" is parsed here).
        object.__setattr__(self, "direction", Direction.parse(self.direction))


class Proposer:
    """The base class of every proposer: ask (`propose`) and tell (`observe`), with
    defaults for everything else. Adding one is: subclass, override `propose` (and
    `observe` if it learns from results), register the class.

    `name` is recorded with every attempt (it may change, e.g. to ``random-fallback`` when
    a learned proposer fails). Class-level declarations the run reads before it builds one:
    `needs_refinement_data` (it trains on the run's refinement pairs, so the run makes
    them), `reads_view` (its model reads the program view, so those pairs are views),
    `accepts_init` (``--proposer-init`` may start its first training from a model)."""

    name: str = "proposer"
    needs_refinement_data: ClassVar[bool] = False
    reads_view: ClassVar[bool] = False
    accepts_init: ClassVar[bool] = False

    def begin_episode(self, episode: int, program: Program, seed: int,
                      stored: dict[str, Any] | None) -> dict[str, Any] | None:
        """Start an episode from `program`. `stored` is the training report an earlier
        start of this run stored (None if none); return the report to store, or None.
        The default trains nothing."""
        return None

    def propose(self, parent: Program, n: int, seed: int,
                exclude: Collection[str] = ()) -> list[Proposal]:
        """`n` candidates from `parent`; variants in `exclude` (already met) count as
        repeats. Seeded: the same call gives the same candidates."""
        raise NotImplementedError(f"{type(self).__name__} does not override propose()")

    def observe(self, observations: Sequence[Observation]) -> None:
        """Results of evaluated candidates, in the order the run recorded them. Under
        ``--fidelity asha`` a candidate is told again when it finishes a higher rung: the
        later observation of a child replaces the earlier. The default ignores them."""
        return None

    def pending(self, values: Sequence[Mapping[str, Any]]) -> None:
        """The site values of the candidates being evaluated right now (``--strategy
        async``), told before each `propose`. A proposer that ranks candidates takes them
        into account so that W workers do not evaluate W near-copies (tpe: running trials
        under its constant liar; learned: kriging-believer points in its surrogate). The
        default ignores them."""
        return None

    def close(self) -> None:
        """Release what the proposer holds (workers, files); called once, at the end."""
        return None


ProposerFactory = Callable[[ProposerContext], Proposer]

PROPOSERS: Registry[ProposerFactory] = Registry("proposer", ENTRY_POINT_GROUP)


def register_proposer(name: str, factory: ProposerFactory) -> None:
    """Register a built-in proposer (third parties use the entry-point group)."""
    PROPOSERS.register(name, factory)


def unregister_proposer(name: str) -> None:
    """Forget a proposer registered in code (a plugin's tests)."""
    PROPOSERS.unregister(name)


def proposer_names() -> list[str]:
    return PROPOSERS.names()


def proposer_factory(name: str) -> ProposerFactory:
    return PROPOSERS.get(name)


def get_proposer(name: str, ctx: ProposerContext) -> Proposer:
    proposer = proposer_factory(name)(ctx)
    if not isinstance(proposer, Proposer):
        raise ConfigError(f"proposer {name!r} made a {type(proposer).__name__}, not a "
                          "deepphoenix.proposers.Proposer (subclass it)")
    return proposer


def _declares(name: str, what: str) -> bool:
    """A flag the factory declares: a `Proposer` subclass's class attribute, or the field
    of a composition (`Composition`); a plain function declares none."""
    factory = proposer_factory(name)
    return bool(getattr(factory, what, False))


def reads_program_view(name: str) -> bool:
    """Whether the proposer's model reads the program view rather than the whole source,
    so its refinement pairs are views (``reads_view = True`` on its class or composition)."""
    return _declares(name, "reads_view")


def needs_refinement_data(name: str) -> bool:
    """Whether the proposer trains on the run's refinement pairs
    (``needs_refinement_data = True`` on its class or composition)."""
    return _declares(name, "needs_refinement_data")


def accepts_init(name: str) -> bool:
    """Whether ``--proposer-init`` applies (``accepts_init = True`` on its class or
    composition)."""
    return _declares(name, "accepts_init")
