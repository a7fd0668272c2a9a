"""Grammars from TOML: the documented file format, validated eagerly.

Every error names the key and, where the text is a file, its line. The format::

    name = "t5"
    description = "what this grammar is for"
    invariants = ["num_heads <= d_model"]     # or [[invariants]] expr = "…", description = "…"

    [sites.d_ff]
    select = ["attribute:*.d_ff", "keyword:*.d_ff"]   # default: every form, any owner
    kind = "int"              # int | float | log-float | categorical | bool
    min = 64                  # inclusive bounds (numeric kinds)
    max = 4096
    choices = ["relu", "gelu"]  # categorical; `dotted = true` for names like nn.ReLU
    mutation = "scale"        # step | scale | resample
    step = 1                  # step: moves of ±1..step
    scale = [0.01, 0.50]      # scale: times (1 ± p), p in this range
    weight = 1.0              # relative chance the random proposer picks the site
    default = 2048            # value when the source does not bind the site
    mutable = true            # false: read (for invariants), never changed
    derive = "d_model // num_heads"   # derived site, recomputed after every edit
"""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path
from typing import Any, NoReturn

from deepphoenix.errors import GrammarError, did_you_mean
from deepphoenix.grammar._expr import compile_expression
from deepphoenix.grammar._grammar import Grammar
from deepphoenix.grammar._spec import (
    Domain,
    Form,
    Invariant,
    Kind,
    Operator,
    OperatorKind,
    Selector,
    SiteSpec,
    Value,
)

__all__ = ["default_operator", "default_selectors", "parse_grammar", "read_grammar_file"]

_TOP_KEYS = ("name", "description", "invariants", "sites")
_SITE_KEYS = (
    "select", "kind", "min", "max", "choices", "dotted", "mutation", "step", "scale",
    "weight", "default", "mutable", "derive", "description",
)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
    """Every form of binding `name`, with any owner."""
    return tuple(
        Selector(form=form, target=name) for form in Form  # owner "*" for all
    )


def default_operator(kind: Kind, low: float | None, high: float | None) -> Operator:
    """Step ±1 for small int ranges, scale ±1–50% for wide ones and floats, else resample."""
    if kind is Kind.INT:
        if low is not None and high is not None and high - low <= 32:
            return Operator(OperatorKind.STEP, k=1)
        return Operator(OperatorKind.SCALE, low=0.01, high=0.5)
    if kind in (Kind.FLOAT, Kind.LOG_FLOAT):
        return Operator(OperatorKind.SCALE, low=0.01, high=0.5)
    return Operator(OperatorKind.RESAMPLE)


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
        want_table, want_key = keys[:-1], keys[-1]
        for number, raw in enumerate(self.lines, start=1):
            line = raw.strip()
            header = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?", line)
            if header:
                table = tuple(p.strip().strip("\"'") for p in header.group(1).split("."))
                if table == keys:
                    header_line = number
                continue
            key = re.match(r"^([A-Za-z0-9_\"'.-]+)\s*=", line)
            if key and table == want_table and key.group(1).strip("\"'") == want_key:
                return number
        return header_line


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
        ctx.fail((*path, "kind"), "missing; one of " + ", ".join(k.value for k in Kind))
    try:
        kind = Kind(kind_text)
    except ValueError:
        ctx.fail((*path, "kind"), f"unknown kind {kind_text!r}; one of "
                 + ", ".join(k.value for k in Kind))

    select = table.get("select")
    if select is None:
        selectors = default_selectors(name)
    else:
        items = [select] if isinstance(select, str) else select
        if not isinstance(items, list) or not items or not all(isinstance(s, str) for s in items):
            ctx.fail((*path, "select"), "expected a selector string or a list of them")
        try:
            selectors = tuple(Selector.parse(s) for s in items)
        except GrammarError as exc:
            ctx.fail((*path, "select"), str(exc))

    numeric = kind in (Kind.INT, Kind.FLOAT, Kind.LOG_FLOAT)
    low = get("min", (int, float))
    high = get("max", (int, float))
    if (low is not None or high is not None) and not numeric:
        ctx.fail((*path, "min" if low is not None else "max"), f"bounds do not apply to {kind}")
    if kind is Kind.INT:
        for key, bound in (("min", low), ("max", high)):
            if bound is not None and not float(bound).is_integer():
                ctx.fail((*path, key), f"an int site needs whole bounds, got {bound!r}")
    if low is not None and high is not None and low > high:
        ctx.fail((*path, "min"), f"min {low!r} is above max {high!r}")
    if kind is Kind.LOG_FLOAT and (low is None or low <= 0):
        ctx.fail((*path, "min"), "a log-float site needs min > 0")
    choices = get("choices", list, [])
    if choices and kind is not Kind.CATEGORICAL:
        ctx.fail((*path, "choices"), f"choices apply to categorical sites, not {kind}")
    if not all(isinstance(c, str) for c in choices):
        ctx.fail((*path, "choices"), "choices must be strings")
    dotted = get("dotted", bool, False)
    mutable = get("mutable", bool, True) and derive_text is None
    domain = Domain(
        low=int(low) if kind is Kind.INT and low is not None else low,
        high=int(high) if kind is Kind.INT and high is not None else high,
        choices=tuple(choices),
    )

    operator = _operator(ctx, path, table, kind, domain, mutable, get)
    if mutable and kind is Kind.CATEGORICAL and len(choices) < 2:
        ctx.fail((*path, "choices"), "a mutable categorical site needs two or more choices")

    weight = get("weight", (int, float), 1.0)
    if not (isinstance(weight, int | float) and weight > 0 and math.isfinite(weight)):
        ctx.fail((*path, "weight"), f"weight must be a positive number, got {weight!r}")
    default = table.get("default")
    if default is not None and not _fits_kind(kind, default):
        ctx.fail((*path, "default"), f"default {default!r} is not a {kind} value")
    if isinstance(default, int) and not isinstance(default, bool) and kind in (
        Kind.FLOAT, Kind.LOG_FLOAT
    ):
        default = float(default)
    derive = None
    if derive_text is not None:
        try:
            derive = compile_expression(derive_text, all_names)
        except GrammarError as exc:
            ctx.fail((*path, "derive"), str(exc))
    description = get("description", str, "")
    return SiteSpec(
        name=name, selectors=selectors, kind=kind, domain=domain, operator=operator,
        weight=float(weight), mutable=mutable, derive=derive, default=default,
        dotted=dotted, description=description,
    )


def _operator(
    ctx: _Context, path: tuple[str, ...], table: dict[str, Any], kind: Kind, domain: Domain,
    mutable: bool, get: Any,
) -> Operator:
    mutation = get("mutation", str)
    if mutation is None:
        op = default_operator(kind, domain.low, domain.high)
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
    if op.kind is OperatorKind.STEP and kind is not Kind.INT:
        ctx.fail((*path, "mutation"), f"step applies to int sites, not {kind}")
    if op.kind is OperatorKind.SCALE and kind not in (Kind.INT, Kind.FLOAT, Kind.LOG_FLOAT):
        ctx.fail((*path, "mutation"), f"scale applies to numeric sites, not {kind}")
    if op.kind is OperatorKind.RESAMPLE and kind in (Kind.INT, Kind.FLOAT, Kind.LOG_FLOAT) and (
        domain.low is None or domain.high is None
    ):
        ctx.fail((*path, "mutation"), "resample needs both min and max")
    return op


def _fits_kind(kind: Kind, value: Value) -> bool:
    if kind is Kind.BOOL:
        return isinstance(value, bool)
    if kind is Kind.INT:
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
