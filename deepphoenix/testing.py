"""Hypothesis strategies for property-testing grammars and mutators.

Use them to test your own grammars (every site is found, every draw satisfies the
invariants) and your own mutators (edits keep the text outside the sites byte for byte,
variants re-parse). The laws deepphoenix itself is tested against are the examples::

    from hypothesis import given
    from deepphoenix import load_grammar, parse_program
    from deepphoenix.testing import edits, sources

    t5 = load_grammar("t5")

    @given(sources(t5))
    def test_round_trip(text):
        assert parse_program(text, t5).module.code == text

Strategies:

- `values(spec)`: values of one site, inside its domain (or anywhere with
  ``in_domain=False``).
- `template_source(grammar)`: a plain source that binds every site of a grammar once.
- `sources(grammar, template=None, formatting=True)`: sources of the grammar's family:
  the template (or `template_source`) with random site values, and optionally random
  comments, blank lines, spacing and parentheses, so formatting laws are exercised.
- `edits(program, in_domain=True)`: lists of `Edit` at the program's proposable sites.
- `variants(program)`: accepted `Variant` objects one set of edits away from `program`
  (structural sites included: their edits name alternatives).
- `outside_sites(program)`: the text between a program's sites; a variant's re-parsed
  program has the same (the law "bytes outside the sites' spans stay identical").
- `grammars()`: random small grammars (every kind, selector form, a derived site,
  invariants), for testing code that must work for any grammar.
"""

from __future__ import annotations

import math
import re

from hypothesis import assume
from hypothesis import strategies as st

from deepphoenix.errors import DeepPhoenixError
from deepphoenix.grammar import (
    Domain,
    Form,
    Grammar,
    Invariant,
    Kind,
    Operator,
    OperatorKind,
    Selector,
    SiteSpec,
    Value,
    compile_expression,
)
from deepphoenix.mutator import Edit, Program, Variant, parse_program, render_value

__all__ = [
    "edits",
    "grammars",
    "outside_sites",
    "sources",
    "template_source",
    "values",
    "variants",
]


def values(spec: SiteSpec, in_domain: bool = True) -> st.SearchStrategy[Value]:
    """Values for one site: inside its domain, or (``in_domain=False``) any of its kind."""
    kind, dom = spec.kind, spec.domain
    if kind is Kind.BOOL:
        return st.booleans()
    if kind is Kind.CATEGORICAL:
        if in_domain and dom.choices:
            return st.sampled_from(dom.choices)
        if spec.structure is not None:  # an alternative, or a name that is none of them
            return st.sampled_from(dom.choices) | st.from_regex(r"\A[a-z_][a-z0-9_]{0,8}\Z")
        if spec.dotted:
            return st.from_regex(r"\A[a-z_][a-z0-9_]{0,8}(\.[a-z_][a-z0-9_]{0,8}){0,2}\Z")
        return st.text(max_size=12)
    if in_domain and dom.values:
        return st.sampled_from(dom.values)
    low = dom.low if in_domain else None
    high = dom.high if in_domain else None
    # A domain relative to the file's value, unresolved: values a file may hold for it to
    # resolve (a factor needs a value above 0).
    positive = in_domain and spec.unresolved and spec.relative is not None and (
        spec.relative.relation.value == "times")
    if kind in (Kind.INT, Kind.LOG_INT):
        grid = (dom.multiple_of or 1) if in_domain else 1
        if (kind is Kind.LOG_INT or positive) and in_domain and (low is None or low < 1):
            low = 1
        return st.integers(
            min_value=None if low is None else math.ceil(low / grid),
            max_value=None if high is None else math.floor(high / grid),
        ).map(lambda v: v * grid)
    if positive and (low is None or low <= 0):
        low = 1e-6
    if kind is Kind.LOG_FLOAT and in_domain and spec.unresolved:
        return st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)
    if kind is Kind.LOG_FLOAT and in_domain:
        assert dom.low is not None and dom.high is not None
        exponent = st.floats(math.log(dom.low), math.log(dom.high))
        return exponent.map(math.exp).filter(lambda v: dom.contains(kind, v))
    return st.floats(min_value=low, max_value=high, allow_nan=not in_domain,
                     allow_infinity=not in_domain)


def _owner(selector: Selector, fallback: str) -> str:
    if selector.owner == "*":
        return fallback
    return re.sub(r"[*?\[\]]", "X", selector.owner)


def _binding(spec: SiteSpec, literal: str) -> str:
    selector = spec.selectors[0]
    name = selector.target
    if selector.form is Form.ATTRIBUTE:
        return f"{_owner(selector, 'config')}.{name} = {literal}\n"
    if selector.form is Form.KEYWORD:
        return f"_call_{spec.name} = {_owner(selector, 'make')}({name}={literal})\n"
    if selector.form is Form.FIELD:
        cls = _owner(selector, "Config").split(".")[-1]
        return f"class {cls}:\n    {name}: object = {literal}\n"
    if selector.form is Form.PARAMETER:
        function = _owner(selector, "build").split(".")[-1]
        return f"def {function}({name}={literal}):\n    return {name}\n"
    if selector.form is Form.ARG:
        return f"_call_{spec.name} = {_owner(selector, 'make')}(0, {literal})\n"
    if selector.form is Form.ITEM:
        return f"{_owner(selector, 'items')} = (0, {literal})\n"
    if selector.form is Form.ENTRY:
        return f"{_owner(selector, 'table')} = {{'{name}': {literal}}}\n"
    if selector.form is Form.CALL:
        return f"{name} = {literal}()\n"
    return f"{name} = {literal}\n"


def _default_value(spec: SiteSpec) -> Value:
    if spec.default is not None:
        return spec.default
    kind, dom = spec.kind, spec.domain
    if kind is Kind.BOOL:
        return False
    if kind is Kind.CATEGORICAL:
        return dom.choices[0] if dom.choices else "x"
    if dom.values:
        return dom.values[0]
    low = dom.low if dom.low is not None else 1
    if kind in (Kind.INT, Kind.LOG_INT):
        grid = dom.multiple_of or 1
        return math.ceil(low / grid) * grid
    return float(low)


def template_source(grammar: Grammar) -> str:
    """A source binding each site once, in the form of its first selector (default values,
    derived sites derived). Sites whose first selector has an ``#index`` are skipped, and
    so are structural sites (their code needs its context: pass `sources` a template)."""
    vals = {spec.name: _default_value(spec) for spec in grammar.sites}
    vals = grammar.derive(vals)
    out = []
    for spec in grammar.sites:
        if spec.structural or spec.hidden or spec.selectors[0].index is not None:
            continue
        out.append(_binding(spec, render_value(spec, vals[spec.name])))
    return "".join(out)


@st.composite
def _reformat(draw: st.DrawFn, program: Program) -> str:
    """The program's text with random comments, blank lines, spacing and parentheses that
    leave it the same program (same sites, same values)."""
    pieces = [program._fixed[0]]
    for site, fixed in zip(program.sites, program._fixed[1:], strict=True):
        literal = site.literal
        if not site.lines and draw(st.booleans()):
            before, after = draw(st.sampled_from(["", " "])), draw(st.sampled_from(["", " "]))
            literal = f"({before}{literal}{after})"
        pieces.append(literal)
        pieces.append(fixed)
    text = "".join(pieces)
    lines = text.splitlines(keepends=True)
    out = []
    for line in lines:
        if draw(st.integers(0, 4)) == 0:
            out.append(draw(st.sampled_from(["\n", "# a comment\n", "  \n"])))
        if line.endswith("\n") and line.strip() and draw(st.integers(0, 3)) == 0:
            line = line[:-1] + "  # note\n"
        out.append(line)
    text = "".join(out)
    # Comments or blank lines inside a multi-line string would change the program: keep
    # the reformatting only when it is the same program.
    try:
        again = parse_program(text, program.grammar)
    except DeepPhoenixError:
        return program.text
    same = again._dump_fixed == program._dump_fixed and again.values == program.values
    return text if same else program.text


@st.composite
def sources(draw: st.DrawFn, grammar: Grammar, template: str | None = None,
            formatting: bool = True) -> str:
    """Sources of the grammar's family with random valid site values."""
    base = parse_program(template if template is not None else template_source(grammar), grammar)
    vals = base.values
    for spec in base.proposable:
        vals[spec.name] = draw(values(spec))
    vals = grammar.derive(vals)
    assume(grammar.check(vals, base.present).ok)
    variant, _ = base.render(vals)
    if not formatting:
        return variant.source
    return draw(_reformat(parse_program(variant.source, grammar)))


@st.composite
def edits(draw: st.DrawFn, program: Program, in_domain: bool = True,
          min_size: int = 1) -> list[Edit]:
    """Edits at a non-empty subset of the program's proposable sites."""
    specs = program.proposable
    assume(specs)
    chosen = draw(st.lists(st.sampled_from(specs), min_size=min_size, max_size=len(specs),
                           unique_by=lambda s: s.name))
    return [Edit(spec.name, draw(values(spec, in_domain))) for spec in chosen]


def outside_sites(program: Program) -> tuple[str, ...]:
    """The pieces of the program's text between its sites' spans, in order."""
    return tuple(program._fixed)


@st.composite
def variants(draw: st.DrawFn, program: Program) -> Variant:
    """Accepted variants of `program` (edits that pass every check)."""
    mutation = program.apply(draw(edits(program)))
    assume(mutation.ok)
    assert mutation.variant is not None
    return mutation.variant


_NAMES = st.from_regex(r"\A[a-z][a-z0-9]{0,6}\Z").filter(
    lambda n: n not in {"if", "in", "is", "or", "and", "not", "def", "for", "as", "del", "try",
                        "class", "else", "elif", "from", "pass", "with", "None", "True",
                        "False", "while", "break", "yield", "raise", "async", "await",
                        "global", "assert", "import", "lambda", "return", "finally",
                        "except", "continue", "nonlocal", "object", "make", "build",
                        "config", "match", "case", "type", "abs", "min", "max"}
)


@st.composite
def _spec(draw: st.DrawFn, name: str) -> SiteSpec:
    kind = draw(st.sampled_from(list(Kind)))
    form = draw(st.sampled_from([f for f in Form if f is not Form.CALL]))
    selector = {
        Form.ARG: Selector(Form.ARG, "1", f"make_{name}"),
        Form.ITEM: Selector(Form.ITEM, "1", f"s_{name}"),
        Form.ENTRY: Selector(Form.ENTRY, "k", f"s_{name}"),
    }.get(form, Selector(form, f"s_{name}"))
    operator = Operator(OperatorKind.RESAMPLE)
    domain = Domain()
    if kind in (Kind.INT, Kind.LOG_INT):
        low = draw(st.integers(-50, 50)) if kind is Kind.INT else draw(st.integers(1, 50))
        high = low + draw(st.integers(1, 5000))
        shape = draw(st.sampled_from(["range", "grid", "values"]))
        if shape == "values":
            listed = draw(st.lists(st.integers(low, high), min_size=2, max_size=6, unique=True))
            domain = Domain(low, high, values=tuple(listed))
        elif shape == "grid":
            grid = draw(st.integers(2, 16))
            high = max(high, (abs(low) // grid + 2) * grid)
            domain = Domain(low, high, multiple_of=grid)
        else:
            domain = Domain(low, high)
        operator = draw(st.sampled_from([
            Operator(OperatorKind.STEP, k=draw(st.integers(1, 3))),
            Operator(OperatorKind.SCALE, low=0.01, high=0.5),
            Operator(OperatorKind.RESAMPLE),
        ]))
    elif kind is Kind.FLOAT:
        start = draw(st.floats(-10, 10))
        domain = Domain(start, start + draw(st.floats(0.5, 100)))
        operator = Operator(OperatorKind.SCALE, low=0.01, high=0.5)
    elif kind is Kind.LOG_FLOAT:
        smallest = draw(st.floats(1e-6, 1.0))
        domain = Domain(smallest, smallest * draw(st.floats(2, 1000)))
        if draw(st.booleans()):
            assert domain.low is not None and domain.high is not None
            floats = draw(st.lists(st.floats(domain.low, domain.high), min_size=2,
                                   max_size=5, unique=True))
            domain = Domain(domain.low, domain.high, values=tuple(floats))
        operator = Operator(OperatorKind.SCALE, low=0.01, high=0.5)
    elif kind is Kind.CATEGORICAL and draw(st.booleans()):
        # A call target: s_NAME = nn.relu() with the callee as the literal.
        callees = draw(st.lists(st.from_regex(r"\A(nn\.)?[A-Z][a-z]{1,5}\Z"), min_size=2,
                                max_size=4, unique=True))
        return SiteSpec(name, (Selector(Form.CALL, f"s_{name}"),), kind,
                        Domain(choices=tuple(callees)), operator, dotted=True)
    elif kind is Kind.CATEGORICAL:
        choices = draw(st.lists(st.from_regex(r"\A[a-z]{1,6}\Z"), min_size=2, max_size=4,
                                unique=True))
        domain = Domain(choices=tuple(choices))
    return SiteSpec(name, (selector,), kind, domain, operator)


@st.composite
def grammars(draw: st.DrawFn, max_sites: int = 5) -> Grammar:
    """Random grammars: 1..max_sites sites of random kinds and selector forms, sometimes a
    derived int site and an invariant."""
    names = draw(st.lists(_NAMES, min_size=1, max_size=max_sites, unique=True))
    specs = [draw(_spec(n)) for n in names]
    ints = [s for s in specs if s.kind is Kind.INT and not s.domain.values
            and not s.domain.multiple_of]
    invariants: list[Invariant] = []
    if len(ints) > 0 and draw(st.booleans()):
        source = draw(st.sampled_from(ints))
        derived_name = f"{source.name}d"
        if derived_name not in names:
            derive = compile_expression(f"{source.name} * 2 + 1", [source.name])
            specs.append(SiteSpec(derived_name, (Selector(Form.NAME, f"s_{derived_name}"),),
                                  Kind.INT, derive=derive, mutable=False))
    if len(ints) > 0 and draw(st.booleans()):
        a = draw(st.sampled_from(ints))
        invariants.append(Invariant(compile_expression(f"{a.name} >= -1000", [a.name])))
    return Grammar("random", tuple(specs), tuple(invariants))

