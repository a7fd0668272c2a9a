"""deepphoenix: AST-grounded program mutation with a learned proposer.

The public façade. Importing it never imports torch; the learned proposer, the evaluator
and the run loop import it where they need it. The Python API (`search`, `load`, `Study`)
is imported on first use, so `import deepphoenix` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deepphoenix.errors import DeepPhoenixError
from deepphoenix.grammar import Grammar, grammar_names, load_grammar, parse_grammar
from deepphoenix.mutator import (
    Diff,
    Edit,
    Mutation,
    Program,
    Variant,
    canonical_hash,
    diff_text,
    ground,
    infer_grammar,
    parse_program,
    read_program,
)
from deepphoenix.outcome import Outcome
from deepphoenix.status import VariantStatus

if TYPE_CHECKING:
    from deepphoenix.study import Best, Study, Trial, load, search

__version__ = "0.1.0"

# The Python API, loaded on first use: it pulls in the run loop, the lineage and pandas.
_LAZY = {"search", "load", "Study", "Best", "Trial"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import deepphoenix.study as study

        return getattr(study, name)
    raise AttributeError(f"module 'deepphoenix' has no attribute {name!r}")


__all__ = [
    "Best",
    "DeepPhoenixError",
    "Diff",
    "Edit",
    "Grammar",
    "Mutation",
    "Outcome",
    "Program",
    "Study",
    "Trial",
    "Variant",
    "VariantStatus",
    "__version__",
    "canonical_hash",
    "diff_text",
    "grammar_names",
    "ground",
    "infer_grammar",
    "load",
    "load_grammar",
    "parse_grammar",
    "parse_program",
    "read_program",
    "search",
]
