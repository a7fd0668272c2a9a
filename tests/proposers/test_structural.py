"""Structural sites reach every proposer as categorical choices of alternative names."""

from __future__ import annotations

import random
from pathlib import Path

import optuna

from deepphoenix.grammar import read_grammar_file
from deepphoenix.mutator import parse_program
from deepphoenix.proposers import ProposerContext, Refiner, TPEProposer, site_distributions
from deepphoenix.proposers._surrogate import encode

FIXTURES = Path(__file__).parent.parent / "fixtures" / "structural"
PARENT = parse_program((FIXTURES / "toy.py").read_text(),
                       read_grammar_file(FIXTURES / "toy.toml"))


def test_random_draws_alternatives() -> None:
    rng = random.Random(0)
    proposer = Refiner()
    changed = set()
    for _ in range(60):
        edits = proposer.draw_edits(PARENT, rng)
        assert edits is not None
        mutation = PARENT.apply(edits)
        if mutation.ok:
            changed.update(e.site for e in edits)
    assert {"mlp", "block", "qk_norm"} <= changed


def test_tpe_searches_them_as_categorical_choices() -> None:
    found = site_distributions([s for s in PARENT.proposable if s.name in PARENT.present])
    assert found["mlp"] == optuna.distributions.CategoricalDistribution(["plain", "swiglu"])
    assert found["qk_norm"].choices == ("off", "on")
    proposer = TPEProposer(ProposerContext(run_dir=Path("."), executor=None, seed=0,  # type: ignore[arg-type]
                                           direction="minimize"))
    proposals = proposer.propose(PARENT, 6, seed=1)
    sources = {p.mutation.variant.source for p in proposals if p.mutation.variant is not None}
    assert any("def swish" in s or "self.q_norm" in s or "+ self.mlp(self.ln_1(x))" in s
               for s in sources)


def test_the_surrogate_one_hots_alternatives() -> None:
    specs = [PARENT.grammar.site("mlp"), PARENT.grammar.site("qk_norm")]
    assert encode(specs, {"mlp": "swiglu", "qk_norm": "off"}) == [0.0, 1.0, 1.0, 0.0]
