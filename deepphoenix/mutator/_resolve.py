"""Resolve a `--grammar` argument: a registered name, a TOML path, or ``infer``."""

from __future__ import annotations

from pathlib import Path

from deepphoenix.grammar import Grammar, load_grammar
from deepphoenix.mutator._infer import infer_grammar

__all__ = ["INFER", "resolve_grammar"]

INFER = "infer"


def resolve_grammar(spec: str | Path | Grammar, text: str, path: str | None = None) -> Grammar:
    """The grammar `spec` names; ``infer`` infers one from `text`."""
    if isinstance(spec, Grammar):
        return spec
    if str(spec) == INFER:
        return infer_grammar(text, path)
    return load_grammar(spec)
