"""deepphoenix: AST-grounded program mutation with a learned proposer.

The public façade. Importing it never imports torch; the learned proposer, the evaluator
and the run loop import it where they need it.
"""

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

__version__ = "0.1.0"

__all__ = [
    "DeepPhoenixError",
    "Diff",
    "Edit",
    "Grammar",
    "Mutation",
    "Outcome",
    "Program",
    "Variant",
    "__version__",
    "canonical_hash",
    "diff_text",
    "grammar_names",
    "ground",
    "infer_grammar",
    "load_grammar",
    "parse_grammar",
    "parse_program",
    "read_program",
]
