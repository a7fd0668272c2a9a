"""Grammars from TOML: the documented file format, validated eagerly.

Every error names the key and, where the text is a file, its line. The format::

    name = "t5"
    description = "what this grammar is for"
    invariants = ["num_heads <= d_model"]     # or [[invariants]] expr = "…", description = "…"

    [sites.d_ff]
    select = ["attribute:*.d_ff", "keyword:*.d_ff"]   # default: every binding form, any owner
    kind = "int"              # int | log-int | float | log-float | categorical | bool
    min = 64                  # inclusive bounds (numeric kinds)
    max = 4096
    multiple_of = 64          # ints: only multiples of this (a grid)
    values = [256, 512, 768]  # numeric kinds: only these values (steps move along the list)
    relative = { times = 4 }  # domain relative to the file's value: /4 .. x4 (see below)
    choices = ["relu", "gelu"]  # categorical; `dotted = true` for names like nn.ReLU
    mutation = "scale"        # step | scale | resample
    step = 1                  # step: moves of ±1..step
    scale = [0.01, 0.50]      # scale: times (1 ± p), p in this range
    weight = 1.0              # relative chance the random proposer picks the site
    default = 2048            # value when the source does not bind the site
    mutable = true            # false: read (for invariants), never changed
    derive = "d_model // num_heads"   # derived site, recomputed after every edit
    hidden = true             # a grammar-only quantity no source writes ...
    read = "n_embd // n_head" # ... whose value a source implies (or give a default)
    moves_with = ["n_embd"]   # a move may adjust these to their nearest valid values
    when = "use_dropout"      # proposed and checked only while this holds
    optional = true           # may be missing from a source (default: true for bool sites)
    nullable = true           # may be written None in a source (unset until proposed)

A domain relative to the file being searched, for knobs whose sensible range depends on
the model at hand (a 2-layer, 64-wide file is searched around 2 x 64, a 12 x 768 one
around that)::

    [sites.n_embd]
    kind = "int"
    relative = { times = 4 }     # from a quarter to four times the file's value
    multiple_of = 32             # still applies: the bounds round inwards onto the grid
    [sites.n_layer]
    kind = "int"
    relative = { plus = 4 }      # the file's value ± 4 ...
    min = 1                      # ... clamped by min and max, if given
    mutation = "step"

``times`` takes a factor F >= 1 (from value / F to value x F) or a pair ``[LOW, HIGH]``
with ``0 < LOW <= 1 <= HIGH``; ``plus`` takes an amount K >= 0 (value ± K) or a pair with
``LOW <= 0 <= HIGH`` (whole numbers for int sites; a log-float site uses ``times``). The
domain is resolved once, against the seed program of a search (``deepphoenix sites FILE``
prints it), never against each parent, so it does not drift; a resumed run resolves it
against its stored seed. Int bounds round inwards, a log kind's lower bound stays
positive, and without ``mutation`` the default operator is chosen for the resolved
bounds. A file that cannot resolve it (the site written None, a value of 0 or below for
``times``, an empty result) is refused with a line naming the site.

A structural site (code alternatives; its value is the chosen alternative's name)::

    [sites.norm]
    kind = "expression"       # expression | statement | definition
    select = "attribute:self.ln_1"    # expression: this binding's value (else: its code)
    within = "Block.forward"  # statement/definition: the class/function bodies to search
    after = "q, k, v = qkv.split(n, dim=2)"   # statement: right after this (or a def name)
    define = "MLP"            # definition: the class or def every alternative defines
    [sites.norm.alternatives]         # name = code; the file's own code is one of them
    layernorm = "LayerNorm(config.n_embd, bias=config.bias)"
    rmsnorm = "RMSNorm(config.n_embd)"

A source may mark a site with a comment ``# deepphoenix: norm``: trailing the line whose
value is an expression site, or on its own line before a statement or definition site.
"""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path
from typing import Any, NoReturn

from deepphoenix.errors import GrammarError, did_you_mean
from deepphoenix.grammar._expr import Expression, compile_expression
from deepphoenix.grammar._grammar import Grammar
from deepphoenix.grammar._relative import Relation, Relative
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
    default_operator,
)
from deepphoenix.grammar._structure import (
    PLACEMENT_RULES,
    Structure,
    StructureError,
    make_structure,
)

__all__ = ["default_operator", "default_selectors", "parse_grammar", "read_grammar_file"]

_TOP_KEYS = ("name", "description", "invariants", "sites")
_SITE_KEYS = (
    "select", "kind", "min", "max", "values", "multiple_of", "choices", "dotted", "mutation",
    "step", "scale", "weight", "default", "mutable", "derive", "description", "hidden", "read",
    "moves_with", "when", "optional", "nullable", "alternatives", "within", "after", "define",
    "relative",
)
_STRUCTURAL_KEYS = ("alternatives", "within", "after", "define")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _kind_names() -> list[str]:
    """A site's possible kinds: the literal kinds, then the placements (registered ones
    included)."""
    return [*(k.value for k in Kind), *PLACEMENT_RULES]


def read_grammar_file(path: str | Path) -> Grammar:
    """Load a grammar from a TOML file; `GrammarError` names the key and line on failure."""
    path = Path(path)
    return parse_grammar(read_grammar_text(path), origin=str(path), default_name=path.stem)


def read_grammar_text(path: Path) -> str:
    """A grammar file's text, or `GrammarError` saying why it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GrammarError(f"grammar file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise GrammarError(f"grammar file {str(path)!r} is a directory") from None
    except UnicodeDecodeError:
        raise GrammarError(f"grammar file {str(path)!r} is not UTF-8 text") from None
    except OSError as exc:
        raise GrammarError(f"grammar file {str(path)!r} cannot be read: {exc.strerror}") from None
    return text


def parse_grammar(text: str, *, origin: str = "<toml>", default_name: str = "grammar") -> Grammar:
    """Build a grammar from TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GrammarError(f"{origin}: invalid TOML: {exc}") from None
    ctx = _Context(text, origin)
    for key in data:
        if key not in _TOP_KEYS:
            ctx.fail((key,), f"unknown key {key!r}.{did_you_mean(key, _TOP_KEYS)}")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        ctx.fail(("name",), f"'name' must be a non-empty string, got {name!r}")
    sites_table = data.get("sites")
    if not isinstance(sites_table, dict) or not sites_table:
        ctx.fail(("sites",), "a grammar needs a [sites.NAME] table for at least one site")
    site_names = list(sites_table)
    sites = tuple(_site(ctx, n, sites_table[n], site_names) for n in site_names)
    invariants = tuple(_invariants(ctx, data.get("invariants", []), site_names))
    description = data.get("description", "")
    if not isinstance(description, str):
        ctx.fail(("description",), "'description' must be a string")
    try:
        return Grammar(name, sites, invariants, description=description, origin=origin)
    except GrammarError as exc:
        raise GrammarError(f"{origin}: {exc}") from None


def default_selectors(name: str) -> tuple[Selector, ...]:
    """Every form that binds `name` (attribute, keyword, field, parameter, name), with any
    owner."""
    return tuple(
        Selector(form=form, target=name) for form in BINDING_FORMS  # owner "*" for all
    )


class _Context:
    def __init__(self, text: str, origin: str) -> None:
        self.lines = text.splitlines()
        self.origin = origin

    def fail(self, keys: tuple[str, ...], message: str) -> NoReturn:
        line = self._locate(keys)
        where = f"{self.origin}:{line}" if line else self.origin
        dotted = ".".join(keys)
        raise GrammarError(f"{where}: key {dotted!r}: {message}")

    def _locate(self, keys: tuple[str, ...]) -> int | None:
        """Best-effort line of a key: the key inside its table, else the table header."""
        table: tuple[str, ...] = ()
        header_line: int | None = None
        parent_line: int | None = None  # a missing key: its table's header
        want_table, want_key = keys[:-1], keys[-1]
        for number, raw in enumerate(self.lines, start=1):
            line = raw.strip()
            header = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?", line)
            if header:
                table = tuple(p.strip().strip("\"'") for p in header.group(1).split("."))
                if table == keys:
                    header_line = number
                if table == want_table and parent_line is None:
                    parent_line = number
                continue
            key = re.match(r"^([A-Za-z0-9_\"'.-]+)\s*=", line)
            if key and table == want_table and key.group(1).strip("\"'") == want_key:
                return number
        return header_line or parent_line


def _site(ctx: _Context, name: str, table: object, all_names: list[str]) -> SiteSpec:
    path = ("sites", name)
    if not _IDENT.match(name):
        ctx.fail(path, f"site name {name!r} must be a Python identifier")
    if not isinstance(table, dict):
        ctx.fail(path, "must be a table of settings")
    assert isinstance(table, dict)
    for key in table:
        if key not in _SITE_KEYS:
            ctx.fail((*path, key), f"unknown key {key!r}.{did_you_mean(key, _SITE_KEYS)}")

    def get(key: str, types: type | tuple[type, ...], default: Any = None) -> Any:
        if key not in table:
            return default
        value = table[key]
        accepted = types if isinstance(types, tuple) else (types,)
        # bool is an int in Python; only accept it where bool is asked for.
        if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted):
            names = "/".join(t.__name__ for t in accepted)
            ctx.fail((*path, key), f"expected {names} but got {value!r}")
        return value

    derive_text = get("derive", str)
    kind_text = get("kind", str, "int" if derive_text else None)
    if kind_text is None:
        ctx.fail((*path, "kind"), "missing; one of " + ", ".join(_kind_names()))
    if kind_text in PLACEMENT_RULES:
        return _structural_site(ctx, name, table, all_names, kind_text, get)
    for key in _STRUCTURAL_KEYS:
        if key in table:
            ctx.fail((*path, key), f"{key!r} applies to structural sites (kind = "
                     "\"expression\", \"statement\" or \"definition\")")
    try:
        kind = Kind(kind_text)
    except ValueError:
        ctx.fail((*path, "kind"), f"unknown kind {kind_text!r}; one of "
                 + ", ".join(_kind_names()))

    hidden = get("hidden", bool, False)
    select = table.get("select")
    if hidden:
        if select is not None:
            ctx.fail((*path, "select"), "a hidden site is not in the source; drop 'select'")
        selectors: tuple[Selector, ...] = ()
    elif select is None:
        selectors = default_selectors(name)
    else:
        selectors = _selectors(ctx, path, select)

    numeric = kind in NUMERIC_KINDS
    mutable = get("mutable", bool, True) and derive_text is None
    low = get("min", (int, float))
    high = get("max", (int, float))
    if (low is not None or high is not None) and not numeric:
        ctx.fail((*path, "min" if low is not None else "max"), f"bounds do not apply to {kind}")
    if kind in INT_KINDS:
        for key, bound in (("min", low), ("max", high)):
            if bound is not None and not float(bound).is_integer():
                ctx.fail((*path, key), f"an {kind} site needs whole bounds, got {bound!r}")
    if low is not None and high is not None and low > high:
        ctx.fail((*path, "min"), f"min {low!r} is above max {high!r}")
    listed = _listed_values(ctx, path, table, kind)
    grid = get("multiple_of", int)
    if grid is not None and (kind not in INT_KINDS or grid < 1):
        ctx.fail((*path, "multiple_of"), f"multiple_of needs an int site and an int >= 1, got "
                 f"{grid!r} for a {kind} site")
    relative = _relative(ctx, path, table, kind, bool(listed), mutable)
    if kind in (Kind.LOG_FLOAT, Kind.LOG_INT) and mutable and not listed and (
        (low is None and relative is None) or (low is not None and low <= 0)
    ):
        ctx.fail((*path, "min"), f"a {kind} site needs min > 0")
    choices = _choices(ctx, path, table, kind)
    calls = any(s.form is Form.CALL for s in selectors)
    dotted = get("dotted", bool, calls)
    domain = Domain(
        low=int(low) if kind in INT_KINDS and low is not None else low,
        high=int(high) if kind in INT_KINDS and high is not None else high,
        choices=choices,
        values=listed,
        multiple_of=grid,
    )
    if grid is not None and low is not None and high is not None and (
        math.ceil(low / grid) > math.floor(high / grid)
    ):
        ctx.fail((*path, "multiple_of"), f"no multiple of {grid} lies in {low}..{high}")

    operator = _operator(ctx, path, table, kind, domain, mutable, get, relative is not None)
    if mutable and kind is Kind.CATEGORICAL and len(choices) < 2:
        ctx.fail((*path, "choices"), "a mutable categorical site needs two or more choices")

    weight = get("weight", (int, float), 1.0)
    if not (isinstance(weight, int | float) and weight > 0 and math.isfinite(weight)):
        ctx.fail((*path, "weight"), f"weight must be a positive number, got {weight!r}")
    default = table.get("default")
    if kind is Kind.CATEGORICAL and isinstance(default, int | float) and not isinstance(
        default, bool
    ):
        default = repr(default)  # a bare-number choice
    if default is not None and not _fits_kind(kind, default):
        ctx.fail((*path, "default"), f"default {default!r} is not a {kind} value")
    if isinstance(default, int) and not isinstance(default, bool) and kind in (
        Kind.FLOAT, Kind.LOG_FLOAT
    ):
        default = float(default)
    derive, read, when = (
        _expression(ctx, path, key, get(key, str), all_names) for key in ("derive", "read", "when")
    )
    if read is not None and not hidden:
        ctx.fail((*path, "read"), "'read' applies to hidden sites (hidden = true)")
    if hidden and read is None and default is None and derive is None:
        ctx.fail((*path, "hidden"), "a hidden site needs 'read' (how a source implies its "
                 "value, e.g. \"n_embd // n_head\") or a 'default'")
    partners = table.get("moves_with", [])
    if isinstance(partners, str):
        partners = [partners]
    if not isinstance(partners, list) or not all(isinstance(p, str) for p in partners):
        ctx.fail((*path, "moves_with"), f"expected a list of site names, got {partners!r}")
    for partner in partners:
        if partner not in all_names or partner == name:
            ctx.fail((*path, "moves_with"), f"{partner!r} is not another site of this grammar."
                     f"{did_you_mean(partner, [n for n in all_names if n != name])}")
    description = get("description", str, "")
    return SiteSpec(
        name=name, selectors=selectors, kind=kind, domain=domain, operator=operator,
        weight=float(weight), mutable=mutable, derive=derive, default=default,
        dotted=dotted, description=description, hidden=hidden, read=read,
        moves_with=tuple(partners), when=when,
        optional=get("optional", bool, kind is Kind.BOOL and default is None),
        nullable=get("nullable", bool, False), relative=relative,
    )


def _relative(ctx: _Context, path: tuple[str, ...], table: dict[str, Any], kind: Kind,
              listed: bool, mutable: bool) -> Relative | None:
    """A site's 'relative' domain: ``{ times = F }`` (the file's value / F .. x F),
    ``{ times = [LOW, HIGH] }`` (x LOW .. x HIGH), ``{ plus = K }`` (± K) or
    ``{ plus = [LOW, HIGH] }``."""
    if "relative" not in table:
        return None
    key = (*path, "relative")
    raw = table["relative"]
    if kind not in NUMERIC_KINDS:
        ctx.fail(key, f"a relative domain applies to numeric sites, not {kind}")
    if listed:
        ctx.fail(key, "a site lists 'values' or states a relative domain, not both")
    if not mutable:
        ctx.fail(key, "a relative domain applies to sites proposers change (not derived or "
                 "fixed ones)")
    relations = ", ".join(r.value for r in Relation)
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in tuple(Relation):
        ctx.fail(key, f"expected a table with one of {relations}, e.g. {{ times = 4 }} (from "
                 "a quarter to four times the file's value) or { plus = 2 } (its value ± 2), "
                 f"got {raw!r}")
    relation, amount = Relation(next(iter(raw))), next(iter(raw.values()))

    def number(x: object) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)

    pair = isinstance(amount, list) and len(amount) == 2 and all(number(x) for x in amount)
    if not (number(amount) or pair):
        ctx.fail(key, f"{relation.value} takes a number or a [low, high] pair, got "
                 f"{amount!r}")
    if relation is Relation.TIMES:
        low, high = (1 / amount, float(amount)) if number(amount) and amount > 0 else (
            tuple(amount) if pair else (0.0, 0.0))
        if not 0 < low <= 1 <= high:
            ctx.fail(key, f"times takes a factor >= 1, or [low, high] with 0 < low <= 1 <= "
                     f"high (the file's value stays inside), got {amount!r}")
    else:
        low, high = (-amount, amount) if number(amount) else tuple(amount)
        if not low <= 0 <= high:
            ctx.fail(key, f"plus takes an amount >= 0, or [low, high] with low <= 0 <= high "
                     f"(the file's value stays inside), got {amount!r}")
        if kind in INT_KINDS and not (float(low).is_integer() and float(high).is_integer()):
            ctx.fail(key, f"an {kind} site moves by whole amounts, got {amount!r}")
        if kind is Kind.LOG_FLOAT:
            ctx.fail(key, "a log-float site's relative domain is a factor: use times")
    return Relative(relation, low, high, default_operator="mutation" not in table)


_NOT_STRUCTURAL = ("min", "max", "values", "multiple_of", "choices", "dotted", "mutation",
                   "step", "scale", "hidden", "read", "moves_with", "nullable", "relative")


def _selectors(ctx: _Context, path: tuple[str, ...], select: Any) -> tuple[Selector, ...]:
    """A site's 'select': one selector string or a non-empty list of them, parsed."""
    items = [select] if isinstance(select, str) else select
    if not isinstance(items, list) or not items or not all(isinstance(s, str) for s in items):
        ctx.fail((*path, "select"), "expected a selector string or a list of them")
    try:
        return tuple(Selector.parse(s) for s in items)
    except GrammarError as exc:
        ctx.fail((*path, "select"), str(exc))


def _structural_site(ctx: _Context, name: str, table: dict[str, Any], all_names: list[str],
                     placement: str, get: Any) -> SiteSpec:
    """A site whose value names one of its code alternatives (a categorical site)."""
    path = ("sites", name)
    for key in _NOT_STRUCTURAL:
        if key in table:
            ctx.fail((*path, key), f"{key!r} does not apply to a structural site (its "
                     "choices are its alternatives)")
    raw = table.get("alternatives")
    if not isinstance(raw, dict):
        ctx.fail((*path, "alternatives"), "a structural site needs an [sites."
                 f"{name}.alternatives] table: name = code, one of them the file's own code")
    rule = PLACEMENT_RULES[placement]
    select = table.get("select")
    selectors: tuple[Selector, ...] = ()
    if select is not None:
        if not rule.selectable:
            ctx.fail((*path, "select"), f"a {placement} site is found by 'within', "
                     "'after' or 'define' (or an annotation), not by a selector")
        selectors = _selectors(ctx, path, select)
    define = get("define", str)
    if rule.needs_define:
        if define is None or not _IDENT.match(define):
            ctx.fail((*path, "define"), f"a {placement} site names the class or def it "
                     "swaps: define = \"MLP\"")
    elif define is not None:
        ctx.fail((*path, "define"), "'define' applies to definition sites")
    try:
        structure: Structure = make_structure(placement, raw, within=get("within", str),
                                              after=get("after", str), define=define)
    except StructureError as exc:
        at: tuple[str, ...] = path
        if exc.key is not None:
            at = (*path, "alternatives", exc.key) if exc.key in raw else (*path, exc.key)
        ctx.fail(at, str(exc))
    default = get("default", str)
    if default is not None and default not in structure.names:
        ctx.fail((*path, "default"), f"default {default!r} is not an alternative; one of "
                 + ", ".join(structure.names))
    weight = get("weight", (int, float), 1.0)
    if not (weight > 0 and math.isfinite(weight)):
        ctx.fail((*path, "weight"), f"weight must be a positive number, got {weight!r}")
    derive, when = (
        _expression(ctx, path, key, get(key, str), all_names) for key in ("derive", "when")
    )
    return SiteSpec(
        name=name, selectors=selectors, kind=Kind.CATEGORICAL,
        domain=Domain(choices=structure.names), operator=Operator(OperatorKind.RESAMPLE),
        weight=float(weight), mutable=get("mutable", bool, True) and derive is None,
        derive=derive, default=default, description=get("description", str, ""),
        when=when, optional=get("optional", bool, False), structure=structure,
    )


def _expression(ctx: _Context, path: tuple[str, ...], key: str, text: str | None,
                names: list[str]) -> Expression | None:
    if text is None:
        return None
    try:
        return compile_expression(text, names)
    except GrammarError as exc:
        ctx.fail((*path, key), str(exc))


def _listed_values(ctx: _Context, path: tuple[str, ...], table: dict[str, Any],
                   kind: Kind) -> tuple[int | float, ...]:
    if "values" not in table:
        return ()
    raw = table["values"]
    if kind not in NUMERIC_KINDS:
        ctx.fail((*path, "values"), f"values apply to numeric sites, not {kind}; a "
                 "categorical site lists 'choices'")
    numbers = isinstance(raw, list) and raw and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in raw
    )
    if not numbers:
        ctx.fail((*path, "values"), f"expected a non-empty list of numbers, got {raw!r}")
    if kind in INT_KINDS and not all(isinstance(v, int) for v in raw):
        ctx.fail((*path, "values"), f"an {kind} site lists ints, got {raw!r}")
    if kind in (Kind.LOG_FLOAT, Kind.LOG_INT) and min(raw) <= 0:
        ctx.fail((*path, "values"), f"a {kind} site lists positive values, got {raw!r}")
    if len(set(raw)) != len(raw):
        ctx.fail((*path, "values"), f"values repeat: {raw!r}")
    if kind in (Kind.FLOAT, Kind.LOG_FLOAT):
        return tuple(float(v) for v in raw)
    return tuple(raw)


def _choices(ctx: _Context, path: tuple[str, ...], table: dict[str, Any],
             kind: Kind) -> tuple[str, ...]:
    if "choices" not in table:
        return ()
    raw = table["choices"]
    if kind is not Kind.CATEGORICAL:
        hint = " (numeric sites list 'values')" if kind in NUMERIC_KINDS else ""
        ctx.fail((*path, "choices"), f"choices apply to categorical sites, not {kind}{hint}")
    ok = isinstance(raw, list) and all(
        isinstance(c, str | int | float) and not isinstance(c, bool) for c in raw
    )
    if not ok:
        ctx.fail((*path, "choices"), f"choices must be strings or numbers, got {raw!r}")
    # Numbers are choices written bare in the source (a categorical 768 | 1024).
    return tuple(c if isinstance(c, str) else repr(c) for c in raw)


def _operator(
    ctx: _Context, path: tuple[str, ...], table: dict[str, Any], kind: Kind, domain: Domain,
    mutable: bool, get: Any, relative: bool = False,
) -> Operator:
    mutation = get("mutation", str)
    if mutation is None:
        op = default_operator(kind, domain.low, domain.high, bool(domain.values),
                              domain.multiple_of)
    else:
        try:
            op_kind = OperatorKind(mutation)
        except ValueError:
            ctx.fail((*path, "mutation"), f"unknown mutation {mutation!r}; one of "
                     + ", ".join(o.value for o in OperatorKind))
        op = Operator(op_kind)
    if "step" in table:
        step = table["step"]
        if not isinstance(step, int) or isinstance(step, bool) or step < 1:
            ctx.fail((*path, "step"), f"step must be an int >= 1, got {step!r}")
        op = Operator(op.kind, k=step, low=op.low, high=op.high)
    if "scale" in table:
        scale = table["scale"]
        ok = (
            isinstance(scale, list) and len(scale) == 2
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in scale)
            and 0 < scale[0] <= scale[1] < 1
        )
        if not ok:
            ctx.fail((*path, "scale"), f"scale must be [low, high] with 0 < low <= high < 1, "
                     f"got {scale!r}")
        op = Operator(op.kind, k=op.k, low=float(scale[0]), high=float(scale[1]))
    if not mutable:
        return op
    if op.kind is OperatorKind.STEP and kind not in INT_KINDS and not domain.values:
        ctx.fail((*path, "mutation"), f"step applies to int sites and listed values, not {kind}")
    if op.kind is OperatorKind.SCALE and kind not in NUMERIC_KINDS:
        ctx.fail((*path, "mutation"), f"scale applies to numeric sites, not {kind}")
    if op.kind is OperatorKind.RESAMPLE and kind in NUMERIC_KINDS and not domain.values and (
        domain.low is None or domain.high is None
    ) and not relative:  # a relative domain resolves to both bounds
        ctx.fail((*path, "mutation"), "resample needs both min and max")
    return op


def _fits_kind(kind: Kind, value: Value) -> bool:
    if kind is Kind.BOOL:
        return isinstance(value, bool)
    if kind in INT_KINDS:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in (Kind.FLOAT, Kind.LOG_FLOAT):
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)


def _invariants(ctx: _Context, raw: object, names: list[str]) -> list[Invariant]:
    if not isinstance(raw, list):
        ctx.fail(("invariants",), "expected a list of expressions or [[invariants]] tables")
    assert isinstance(raw, list)
    out = []
    for item in raw:
        if isinstance(item, str):
            text, description = item, ""
        elif isinstance(item, dict) and isinstance(item.get("expr"), str):
            text, description = item["expr"], str(item.get("description", ""))
        else:
            ctx.fail(("invariants",), f"expected an expression string or a table with 'expr', "
                     f"got {item!r}")
        try:
            out.append(Invariant(compile_expression(text, names), description))
        except GrammarError as exc:
            ctx.fail(("invariants",), str(exc))
    return out
