"""Grammars: declarative data saying which sites of a program may change, their domains,
mutation operators, derivations and invariants. Never imports torch."""

from deepphoenix.grammar._expr import EvaluationError, Expression, compile_expression
from deepphoenix.grammar._grammar import Grammar, coerce_value
from deepphoenix.grammar._mutation import (
    candidates,
    draw_value,
    move_value,
    neighbours,
    repair,
    round_half_up,
)
from deepphoenix.grammar._registry import (
    ENTRY_POINT_GROUP,
    grammar_file,
    grammar_names,
    load_grammar,
)
from deepphoenix.grammar._spec import (
    BINDING_FORMS,
    INT_KINDS,
    NUMERIC_KINDS,
    Domain,
    Form,
    Invariant,
    Kind,
    Operator,
    OperatorKind,
    Selector,
    SiteSpec,
    Value,
    format_value,
    same_choice,
)
from deepphoenix.grammar._structure import (
    Alternative,
    Placement,
    Structure,
    element_key,
    expression_key,
)
from deepphoenix.grammar._toml import (
    default_operator,
    default_selectors,
    parse_grammar,
    read_grammar_file,
    read_grammar_text,
)
from deepphoenix.grammar._write import format_grammar

__all__ = [
    "BINDING_FORMS",
    "ENTRY_POINT_GROUP",
    "INT_KINDS",
    "NUMERIC_KINDS",
    "Alternative",
    "Domain",
    "EvaluationError",
    "Expression",
    "Form",
    "Grammar",
    "Invariant",
    "Kind",
    "Operator",
    "OperatorKind",
    "Placement",
    "Selector",
    "SiteSpec",
    "Structure",
    "Value",
    "candidates",
    "coerce_value",
    "compile_expression",
    "default_operator",
    "default_selectors",
    "draw_value",
    "element_key",
    "expression_key",
    "format_grammar",
    "format_value",
    "grammar_file",
    "grammar_names",
    "load_grammar",
    "move_value",
    "neighbours",
    "parse_grammar",
    "read_grammar_file",
    "read_grammar_text",
    "repair",
    "round_half_up",
    "same_choice",
]
