"""The Optuna export takes a structural site as a categorical over its alternatives."""

from __future__ import annotations

from pathlib import Path

import optuna

from deepphoenix.grammar import read_grammar_file
from deepphoenix.lineage._optuna import _distribution

GRAMMAR = read_grammar_file(Path(__file__).parent.parent / "fixtures" / "structural"
                            / "toy.toml")


def test_structural_sites_export_as_categorical_alternatives() -> None:
    found = _distribution(GRAMMAR.site("mlp"), ["swiglu", "plain"])
    assert found == optuna.distributions.CategoricalDistribution(["plain", "swiglu"])
    assert _distribution(GRAMMAR.site("qk_norm"), ["on"]).choices == ("off", "on")
