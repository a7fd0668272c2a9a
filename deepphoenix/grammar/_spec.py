"""Value objects that declare what may change: selectors, kinds, domains, operators, sites."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any

from deepphoenix.errors import GrammarError
from deepphoenix.grammar._expr import Expression

__all__ = [
    "Domain",
    "Form",
    "Invariant",
    "Kind",
    "Operator",
    "OperatorKind",
    "Selector",
    "SiteSpec",
    "Value",
    "format_value",
]

Value = int | float | bool | str


class Kind(StrEnum):
    """What a site's value is and how it is written."""

    INT = "int"
    FLOAT = "float"
    LOG_FLOAT = "log-float"  # a positive float mutated and sampled on a log scale
    CATEGORICAL = "categorical"  # one of `choices`: strings, or dotted names with `dotted`
    BOOL = "bool"


class Form(StrEnum):
    """Where a site's literal lives in the source."""

    ATTRIBUTE = "attribute"  # config.d_ff = 1024
    KEYWORD = "keyword"  # T5Config(d_ff=1024)
    FIELD = "field"  # class GPTConfig: n_layer: int = 12
    PARAMETER = "parameter"  # def __init__(self, d_model=512)
    NAME = "name"  # lr = 3e-4 (outside a class body)


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OWNER = re.compile(r"^[A-Za-z0-9_.*?\[\]]+$")


@dataclass(frozen=True, slots=True)
class Selector:
    """Which literal a site is: a form, the bound name, and a glob on its owner.

    Written as ``form:owner.target`` or ``form:target``, optionally ``#k`` for the k-th
    match in document order (inferred grammars use it for repeated bindings). The owner is
    the dotted object of an attribute, the callee of a keyword, the class of a field, the
    function of a parameter; it matches when the glob fits the whole dotted owner or any
    dotted suffix of it, so ``keyword:T5Config.d_ff`` matches ``transformers.T5Config(d_ff=…)``.
    """

    form: Form
    target: str
    owner: str = "*"
    index: int | None = None

    @classmethod
    def parse(cls, text: str) -> Selector:
        body, hash_sign, index_text = text.partition("#")
        index = None
        if hash_sign:
            if not index_text.isdigit() or int(index_text) < 1:
                raise GrammarError(f"selector {text!r}: '#' must be followed by a number >= 1")
            index = int(index_text)
        form_text, sep, rest = body.partition(":")
        if not sep:
            raise GrammarError(
                f"selector {text!r} needs the form 'FORM:OWNER.NAME' or 'FORM:NAME' with FORM "
                f"one of {', '.join(f.value for f in Form)}"
            )
        try:
            form = Form(form_text.strip())
        except ValueError:
            raise GrammarError(
                f"selector {text!r}: unknown form {form_text!r}; use one of "
                f"{', '.join(f.value for f in Form)}"
            ) from None
        owner, _, target = rest.strip().rpartition(".")
        owner = owner or "*"
        if not _IDENT.match(target):
            raise GrammarError(f"selector {text!r}: {target!r} is not a Python name")
        if not _OWNER.match(owner):
            raise GrammarError(f"selector {text!r}: owner {owner!r} is not a dotted name or glob")
        if form is Form.NAME and owner != "*":
            raise GrammarError(f"selector {text!r}: a 'name' selector takes no owner")
        return cls(form=form, target=target, owner=owner, index=index)

    def matches_owner(self, dotted: str | None) -> bool:
        if self.owner == "*":
            return True
        if dotted is None:
            return False
        parts = dotted.split(".")
        return any(fnmatchcase(".".join(parts[i:]), self.owner) for i in range(len(parts)))

    def __str__(self) -> str:
        suffix = f"#{self.index}" if self.index is not None else ""
        if self.owner == "*" and self.form is Form.NAME:
            return f"{self.form.value}:{self.target}{suffix}"
        return f"{self.form.value}:{self.owner}.{self.target}{suffix}"


@dataclass(frozen=True, slots=True)
class Domain:
    """The values a site may take: inclusive numeric bounds, or a set of choices."""

    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def describe(self, kind: Kind) -> str:
        if kind is Kind.BOOL:
            return "True or False"
        if kind is Kind.CATEGORICAL:
            return "one of " + ", ".join(self.choices)
        if self.low is None and self.high is None:
            return "any value"  # e.g. a derived site: its derivation decides
        low = "-inf" if self.low is None else _short(self.low)
        high = "inf" if self.high is None else _short(self.high)
        return f"{low}..{high}"

    def contains(self, kind: Kind, value: Value) -> bool:
        if kind is Kind.BOOL:
            return isinstance(value, bool)
        if kind is Kind.CATEGORICAL:
            return isinstance(value, str) and value in self.choices
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if kind is Kind.INT and not isinstance(value, int):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if kind is Kind.LOG_FLOAT and value <= 0:
            return False
        if self.low is not None and value < self.low:
            return False
        return not (self.high is not None and value > self.high)


class OperatorKind(StrEnum):
    """How the random proposer moves a value."""

    STEP = "step"  # ±1..k (ints)
    SCALE = "scale"  # times (1 ± p), p in [low, high]; ints round, by whole percents
    RESAMPLE = "resample"  # a fresh draw from the domain (flip for bools)


@dataclass(frozen=True, slots=True)
class Operator:
    kind: OperatorKind
    k: int = 1
    low: float = 0.01
    high: float = 0.5

    def describe(self) -> str:
        if self.kind is OperatorKind.STEP:
            return f"step ±1..{self.k}" if self.k > 1 else "step ±1"
        if self.kind is OperatorKind.SCALE:
            return f"scale ±{self.low:.0%}..{self.high:.0%}"
        return "resample"


@dataclass(frozen=True, slots=True)
class SiteSpec:
    """A named, typed place in a program that may change (or be derived, or held fixed).

    `default` is the value the site has when the source does not bind it (the grammar's
    invariants still see it); a site without a default must be found in the source.
    `derive` computes a derived site from others; derived sites are never mutated directly.
    `weight` is the relative chance the random proposer picks this site.
    """

    name: str
    selectors: tuple[Selector, ...]
    kind: Kind
    domain: Domain = Domain()
    operator: Operator = Operator(OperatorKind.RESAMPLE)
    weight: float = 1.0
    mutable: bool = True
    derive: Expression | None = None
    default: Value | None = None
    dotted: bool = False
    description: str = ""

    @property
    def derived(self) -> bool:
        return self.derive is not None

    @property
    def proposable(self) -> bool:
        """Whether proposers may change it directly."""
        return self.mutable and self.derive is None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "select": [str(s) for s in self.selectors],
            "kind": self.kind.value,
            "domain": self.domain.describe(self.kind),
            "mutation": self.operator.describe() if self.proposable else None,
            "mutable": self.proposable,
        }
        if self.derive is not None:
            out["derive"] = self.derive.text
        if self.default is not None:
            out["default"] = self.default
        return out


@dataclass(frozen=True, slots=True)
class Invariant:
    """A boolean expression over site names that every accepted variant satisfies."""

    expression: Expression
    description: str = ""

    @property
    def text(self) -> str:
        return self.expression.text


def _short(bound: float) -> str:
    """A domain bound for people: 12 significant digits, so an inferred bound computed as
    1e-4 / 10 reads 1e-05, not 9.999999999999999e-06 (display only; values keep repr)."""
    if isinstance(bound, float) and not bound.is_integer():
        return format(bound, ".12g")
    return format_value(bound)


def format_value(value: Value | float) -> str:
    """Render a value for people: ints plainly, floats by repr, strings bare."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return repr(value)
    return str(value)
