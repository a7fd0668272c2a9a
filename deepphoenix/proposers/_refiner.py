"""`Refiner`: the grammar's refinement operator. It draws the paper's refinement
distribution (one site picked by weight, moved by its operator: depth or heads ±1, d_ff
±1–50%) and samples whole random programs for the refinement dataset. It is not a
proposer: the ``random`` proposer (`RandomProposer`, the baseline the learned proposer is
compared with) draws with it through `GrammarDrawer`. It was called `RandomProposer`
before the proposers became compositions."""

from __future__ import annotations

import random
from collections.abc import Mapping

from deepphoenix.errors import ConfigError
from deepphoenix.grammar import Value, draw_value, move_value, repair
from deepphoenix.mutator import Bundle, Edit, Mutation, Program, format_edit_script
from deepphoenix.outcome import Outcome
from deepphoenix.proposers._records import Proposal

__all__ = ["Refiner"]

_ATTEMPTS = 64


class Refiner:
    """Draws edits from the grammar. `max_edits` > 1 chains up to that many moves."""

    def __init__(self, max_edits: int = 1) -> None:
        if not isinstance(max_edits, int) or isinstance(max_edits, bool) or max_edits < 1:
            raise ConfigError(
                f"Expected int >= 1 but got max_edits={max_edits!r} "
                f"(type={type(max_edits).__name__})"
            )
        self.max_edits = max_edits

    def draw_edits(self, program: Program | Bundle, rng: random.Random,
                   base: Mapping[str, Value] | None = None) -> tuple[Edit, ...] | None:
        """A chain of 1..max_edits single-site moves from `base` (default: the program's
        values); None if the program has no site that may move."""
        specs = program.proposable
        if not specs:
            return None
        start = dict(base) if base is not None else program.values
        values = dict(start)
        grammar = program.grammar
        for _ in range(rng.randint(1, self.max_edits)):
            live = [s for s in specs if grammar.active(s, values)]
            if not live:
                break
            for _attempt in range(_ATTEMPTS):
                spec = rng.choices(live, weights=[s.weight for s in live])[0]
                current = values.get(spec.name)  # None: a nullable site written None
                new = draw_value(spec, rng) if current is None else move_value(
                    spec, current, rng)
                if new is None:
                    continue
                moved = {**values, spec.name: new}
                if spec.moves_with:
                    # A joint move: the partners take their nearest values that keep the
                    # grammar's checks, or the move is drawn again.
                    partners = [p for p in spec.moves_with if program.editable(p)]
                    repaired = repair(grammar, moved, partners, program.present)
                    if repaired is None:
                        continue
                    moved = repaired
                values = moved
                break
            else:
                break
        # Moves can cancel out (+1 then -1): an empty tuple, not None, says so.
        return tuple(Edit(k, v) for k, v in values.items() if v != start.get(k))

    def refine(self, program: Program, rng: random.Random) -> Mutation:
        """One accepted refinement if any of `_ATTEMPTS` draws gives one, else the last
        rejected mutation (its outcome says why)."""
        last = Mutation(Outcome.NO_OP, "no site of the program can move")
        for _ in range(_ATTEMPTS):
            edits = self.draw_edits(program, rng)
            if edits is None:
                return last
            if not edits:
                continue
            last = program.apply(edits)
            if last.ok:
                return last
        return last

    def refine_values(self, program: Program, base: Mapping[str, Value],
                      rng: random.Random) -> tuple[dict[str, Value], tuple[Edit, ...]] | None:
        """Values one refinement away from `base` that satisfy the grammar, and the edits."""
        for _ in range(_ATTEMPTS):
            edits = self.draw_edits(program, rng, base)
            if edits is None:
                return None
            if not edits:
                continue
            values = dict(base)
            values.update((e.site, e.value) for e in edits)
            values = program.grammar.derive(values)
            if program.grammar.check(values, program.present).ok:
                return values, edits
        return None

    def sample_values(self, program: Program, rng: random.Random) -> dict[str, Value]:
        """Every proposable site drawn uniformly from its domain, derived sites recomputed,
        redrawn until the grammar accepts (the dataset's unrefined programs). Where
        `_ATTEMPTS` draws all break an invariant (llama's three rules over heads, width and
        key/value heads hold for one draw in ten), draws are mended by the grammar's joint
        moves (`moves_with` partners to their nearest valid values)."""
        grammar = program.grammar
        partners = list(dict.fromkeys(partner for spec in program.proposable
                                      for partner in spec.moves_with
                                      if program.editable(partner)))
        for attempt in range(2 * _ATTEMPTS if partners else _ATTEMPTS):
            values = program.values
            values.update((spec.name, draw_value(spec, rng)) for spec in program.proposable
                          if grammar.active(spec, values))
            values = grammar.derive(values)
            if grammar.check(values, program.present).ok:
                return values
            if attempt >= _ATTEMPTS:  # plain draws first: the datasets they made stand
                mended = repair(grammar, values, partners, program.present)
                if mended is not None:
                    return grammar.derive(mended)
        raise ConfigError(
            f"no random draw of grammar {program.grammar.name!r} satisfies its invariants in "
            f"{_ATTEMPTS} tries; check the domains and invariants"
        )

    def propose(self, program: Program, n: int, rng: random.Random) -> list[Proposal]:
        """`n` candidates (each one refinement of `program`), as the loop consumes them."""
        out = []
        for _ in range(n):
            mutation = self.refine(program, rng)
            text = format_edit_script(program, mutation.variant.changes) if (
                mutation.variant is not None
            ) else ""
            out.append(Proposal(mutation, text))
        return out
