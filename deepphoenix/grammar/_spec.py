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
from deepphoenix.grammar._structure import Structure

__all__ = [
    "BINDING_FORMS",
    "INT_KINDS",
    "NUMERIC_KINDS",
    "Domain",
    "Form",
    "Invariant",
    "Kind",
    "Operator",
    "OperatorKind",
    "Relation",
    "Relative",
    "Selector",
    "SiteSpec",
    "Value",
    "default_operator",
    "format_value",
    "same_choice",
    "short_bound",
]

Value = int | float | bool | str


class Kind(StrEnum):
    """What a site's value is and how it is written."""

    INT = "int"
    FLOAT = "float"
    LOG_FLOAT = "log-float"  # a positive float mutated and sampled on a log scale
    LOG_INT = "log-int"  # a positive int mutated and sampled on a log scale
    CATEGORICAL = "categorical"  # one of `choices`: strings, or dotted names with `dotted`
    BOOL = "bool"


NUMERIC_KINDS = frozenset({Kind.INT, Kind.FLOAT, Kind.LOG_FLOAT, Kind.LOG_INT})
INT_KINDS = frozenset({Kind.INT, Kind.LOG_INT})


class Form(StrEnum):
    """Where a site's literal lives in the source."""

    ATTRIBUTE = "attribute"  # config.d_ff = 1024
    KEYWORD = "keyword"  # T5Config(d_ff=1024)
    FIELD = "field"  # class GPTConfig: n_layer: int = 12
    PARAMETER = "parameter"  # def __init__(self, d_model=512)
    NAME = "name"  # lr = 3e-4 (outside a class body; the owner is the enclosing function)
    ARG = "arg"  # F.layer_norm(x, w, b, 1e-5): arg:F.layer_norm[3], 0-based
    ITEM = "item"  # betas = (0.9, 0.95): item:betas[1]
    ENTRY = "entry"  # shapes = {"n_layer": 12}: entry:shapes[n_layer]
    CALL = "call"  # self.act = nn.GELU(): call:self.act (the callee is the literal)


BINDING_FORMS = (Form.ATTRIBUTE, Form.KEYWORD, Form.FIELD, Form.PARAMETER, Form.NAME)
_BRACKETED = (Form.ARG, Form.ITEM, Form.ENTRY)


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BRACKET = re.compile(r"^(?P<owner>[^\[\]]+)\[(?P<key>[^\[\]]+)\]$")
_OWNER = re.compile(r"^[A-Za-z0-9_.*?\[\]]+$")


@dataclass(frozen=True, slots=True)
class Selector:
    """Which literal a site is: a form, the bound name, a glob on its owner, and
    optionally a glob on the enclosing scope.

    Written as ``form:owner.target`` or ``form:target``; positional arguments, tuple items
    and dict entries as ``arg:CALLEE[N]``, ``item:OWNER[N]`` (0-based) and
    ``entry:OWNER[KEY]``; optionally ``#k`` for the k-th match in document order and
    `` in SCOPE`` for a match inside a function or class (``keyword:normal_.std in
    _init_weights``). The owner is the dotted object of an attribute, the callee of a
    keyword or argument, the class of a field, the function of a parameter or name, the
    bound name of a tuple or dict, the assigned name of a call; it matches when the glob
    fits the whole dotted owner or any dotted suffix of it, so ``keyword:T5Config.d_ff``
    matches ``transformers.T5Config(d_ff=…)``. A scope matches any part of the dotted path
    of classes and functions around the binding.
    """

    form: Form
    target: str
    owner: str = "*"
    index: int | None = None
    within: str | None = None

    @classmethod
    def parse(cls, text: str) -> Selector:
        spec, in_sep, within_text = text.partition(" in ")
        within = within_text.strip() or None
        if in_sep and (within is None or not _OWNER.match(within)):
            raise GrammarError(f"selector {text!r}: 'in' must be followed by a function or "
                               "class name (a glob)")
        body, hash_sign, index_text = spec.strip().partition("#")
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
        if form in _BRACKETED:
            found = _BRACKET.match(rest.strip())
            if found is None:
                raise GrammarError(f"selector {text!r}: write {form.value}:OWNER[KEY], e.g. "
                                   f"{_BRACKET_EXAMPLE[form]}")
            owner, target = found.group("owner").strip(), found.group("key").strip()
            if form is not Form.ENTRY and not target.isdigit():
                raise GrammarError(f"selector {text!r}: {target!r} is not a 0-based position")
        else:
            owner, _, target = rest.strip().rpartition(".")
            owner = owner or "*"
            if not _IDENT.match(target):
                raise GrammarError(f"selector {text!r}: {target!r} is not a Python name")
        if not _OWNER.match(owner):
            raise GrammarError(f"selector {text!r}: owner {owner!r} is not a dotted name or glob")
        return cls(form=form, target=target, owner=owner, index=index, within=within)

    def matches_owner(self, dotted: str | None) -> bool:
        return self.owner == "*" or _glob_suffix(self.owner, dotted)

    def matches_scope(self, scope: str | None) -> bool:
        if self.within is None:
            return True
        if scope is None:
            return False
        parts = scope.split(".")
        return any(
            fnmatchcase(".".join(parts[i:j]), self.within)
            for i in range(len(parts)) for j in range(i + 1, len(parts) + 1)
        )

    def __str__(self) -> str:
        suffix = f"#{self.index}" if self.index is not None else ""
        if self.within is not None:
            suffix += f" in {self.within}"
        if self.form in _BRACKETED:
            return f"{self.form.value}:{self.owner}[{self.target}]{suffix}"
        if self.owner == "*" and self.form is Form.NAME:
            return f"{self.form.value}:{self.target}{suffix}"
        return f"{self.form.value}:{self.owner}.{self.target}{suffix}"


_BRACKET_EXAMPLE = {
    Form.ARG: "arg:F.layer_norm[3]",
    Form.ITEM: "item:betas[1]",
    Form.ENTRY: "entry:shapes[n_layer]",
}


def _glob_suffix(glob: str, dotted: str | None) -> bool:
    if dotted is None:
        return False
    parts = dotted.split(".")
    return any(fnmatchcase(".".join(parts[i:]), glob) for i in range(len(parts)))


@dataclass(frozen=True, slots=True)
class Domain:
    """The values a site may take: inclusive numeric bounds (and, for ints, a grid
    `multiple_of`), an explicit set of numeric `values`, or categorical `choices`."""

    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    values: tuple[int | float, ...] = ()
    multiple_of: int | None = None

    def describe(self, kind: Kind) -> str:
        if kind is Kind.BOOL:
            return "True or False"
        if kind is Kind.CATEGORICAL:
            return "one of " + ", ".join(self.choices)
        if self.values:
            return "one of " + ", ".join(format_value(v) for v in self.values)
        if self.low is None and self.high is None:
            return "any value"  # e.g. a derived site: its derivation decides
        low = "-inf" if self.low is None else short_bound(self.low)
        high = "inf" if self.high is None else short_bound(self.high)
        grid = f", multiple of {self.multiple_of}" if self.multiple_of else ""
        return f"{low}..{high}{grid}"

    def describe_clamps(self) -> str:
        """What bounds a relative domain (its min, max and grid): ``within 1..inf,
        multiple of 32``, or empty."""
        parts = []
        if self.low is not None or self.high is not None:
            low = "-inf" if self.low is None else short_bound(self.low)
            high = "inf" if self.high is None else short_bound(self.high)
            parts.append(f"within {low}..{high}")
        if self.multiple_of:
            parts.append(f"multiple of {self.multiple_of}")
        return ", ".join(parts)

    def contains(self, kind: Kind, value: Value) -> bool:
        if kind is Kind.BOOL:
            return isinstance(value, bool)
        if kind is Kind.CATEGORICAL:
            return isinstance(value, str) and same_choice(value, self.choices) is not None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if kind in INT_KINDS and not isinstance(value, int):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if kind in (Kind.LOG_FLOAT, Kind.LOG_INT) and value <= 0:
            return False
        if self.values and value not in self.values:
            return False
        if self.multiple_of and isinstance(value, int) and value % self.multiple_of:
            return False
        if self.low is not None and value < self.low:
            return False
        return not (self.high is not None and value > self.high)


def same_choice(value: str, choices: tuple[str, ...]) -> str | None:
    """The choice `value` is: equal text, or the same number written another way
    (``1e-5`` is the choice ``"0.00001"``)."""
    if value in choices:
        return value
    number = _as_number(value)
    if number is None:
        return None
    return next((c for c in choices if _as_number(c) == number), None)


def _as_number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


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


def default_operator(kind: Kind, low: float | None, high: float | None,
                     listed: bool = False, grid: int | None = None) -> Operator:
    """Step ±1 for small int ranges (in grid steps), along the list for listed values,
    scale ±1–50% for wide ranges, log kinds and floats, else resample."""
    if listed:
        return Operator(OperatorKind.STEP, k=1)
    if kind is Kind.INT:
        if grid and low is not None and high is not None and (high - low) / grid <= 32:
            return Operator(OperatorKind.STEP, k=1)
        if low is not None and high is not None and high - low <= 32:
            return Operator(OperatorKind.STEP, k=1)
        return Operator(OperatorKind.SCALE, low=0.01, high=0.5)
    if kind in (Kind.FLOAT, Kind.LOG_FLOAT, Kind.LOG_INT):
        return Operator(OperatorKind.SCALE, low=0.01, high=0.5)
    return Operator(OperatorKind.RESAMPLE)


@dataclass(frozen=True, slots=True)
class SiteSpec:
    """A named, typed place in a program that may change (or be derived, or held fixed).

    `default` is the value the site has when the source does not bind it (the grammar's
    invariants still see it); a site without a default must be found in the source.
    `derive` computes a derived site from others; derived sites are never mutated directly.
    `weight` is the relative chance the random proposer picks this site.

    A `hidden` site is a grammar-only quantity the source does not write (a head size):
    its value is `read` from the other sites' values (or is its `default`), it may be
    proposed like any site, and derived sites may use it. `moves_with` names the sites a
    move of this one may adjust, to the nearest values that keep the invariants (a joint
    move). `when` makes a site conditional: it is proposed and domain-checked only while
    the expression holds. An `optional` site may be missing from a source (bool sites are
    optional unless they say otherwise): then it is not proposed and rules naming it are
    not checked. A `nullable` site may be written ``None`` in the source (``head_dim=None``):
    it is then unset, like a missing optional site, and a proposer sets it by a fresh
    draw from its domain.

    A `structure` makes it a structural site: a categorical site whose choices are the
    names of code alternatives (an expression, statements or a definition), one of which
    is the file's own code; the mutator splices the chosen alternative's code.

    A `relative` domain is a span around the value in the file being searched (``times``
    or ``plus``); until `Grammar.resolve` resolves it against a program, `domain` holds
    only its clamps (min, max, multiple_of). Once resolved, `domain` is the absolute
    domain and `relative.anchor` the value it was resolved against.
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
    hidden: bool = False
    read: Expression | None = None
    moves_with: tuple[str, ...] = ()
    when: Expression | None = None
    optional: bool = False
    nullable: bool = False
    structure: Structure | None = None
    relative: Relative | None = None

    @property
    def structural(self) -> bool:
        """Whether the site's value names a piece of code (not a literal)."""
        return self.structure is not None

    @property
    def derived(self) -> bool:
        return self.derive is not None

    @property
    def unresolved(self) -> bool:
        """Whether its domain is relative to a file's value not yet given."""
        return self.relative is not None and self.relative.anchor is None

    def describe_domain(self) -> str:
        """The domain for people: ``32..256, multiple of 32 (64 /4..x4)`` once resolved,
        ``the file's value /4..x4, within 1..48`` before."""
        shown = self.domain.describe(self.kind)
        if self.relative is None:
            return shown
        if self.relative.anchor is not None:
            return f"{shown} ({self.relative.describe()})"
        clamps = self.domain.describe_clamps()
        return self.relative.describe() + (f", {clamps}" if clamps else "")

    @property
    def proposable(self) -> bool:
        """Whether proposers may change it directly."""
        return self.mutable and self.derive is None

    def _describe_operator(self) -> str:
        shown = self.operator.describe()
        if (self.unresolved and self.relative is not None and self.relative.default_operator
                and self.kind is Kind.INT):  # chosen once the range is known
            scale = Operator(OperatorKind.SCALE, low=self.operator.low, high=self.operator.high)
            return f"step ±1 (a range of 32 steps or fewer) or {scale.describe()}"
        return shown

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "select": [str(s) for s in self.selectors],
            "kind": self.kind.value,
            "domain": self.describe_domain(),
            "mutation": self._describe_operator() if self.proposable else None,
            "mutable": self.proposable,
        }
        if self.derive is not None:
            out["derive"] = self.derive.text
        if self.default is not None:
            out["default"] = self.default
        if self.hidden:
            out["hidden"] = True
        if self.read is not None:
            out["read"] = self.read.text
        if self.moves_with:
            out["moves_with"] = list(self.moves_with)
        if self.when is not None:
            out["when"] = self.when.text
        if self.nullable:
            out["nullable"] = True
        if self.relative is not None:
            out["relative"] = self.relative.to_toml()
        if self.structure is not None:
            out["kind"] = str(self.structure.placement)
            out.update(self.structure.to_dict())
            del out["placement"]
        return out


@dataclass(frozen=True, slots=True)
class Invariant:
    """A boolean expression over site names that every accepted variant satisfies."""

    expression: Expression
    description: str = ""

    @property
    def text(self) -> str:
        return self.expression.text


def short_bound(bound: float) -> str:
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


# Domains relative to the file being searched (resolved in `_relative`).
class Relation(StrEnum):
    """How a relative domain's span applies to the file's value."""

    TIMES = "times"  # the value times [low, high]
    PLUS = "plus"  # the value plus [low, high]


@dataclass(frozen=True, slots=True)
class Relative:
    """A site's domain as a span around the file's value: ``times`` factors (``0 < low
    <= 1 <= high``) or ``plus`` offsets (``low <= 0 <= high``). `anchor` is the value it
    was resolved against (None until resolved). `default_operator`: the grammar names no
    mutation, so the site's operator is the default for the resolved bounds."""

    relation: Relation
    low: float
    high: float
    anchor: int | float | None = None
    default_operator: bool = True

    @property
    def symmetric(self) -> bool:
        if self.relation is Relation.TIMES:
            return math.isclose(self.low * self.high, 1.0, rel_tol=1e-9)
        return self.low == -self.high

    def span(self) -> str:
        """``/4..x4``, ``x0.5..x2``, ``±4``, ``-1..+4``."""
        if self.relation is Relation.TIMES:
            low = f"/{_amount(self.high)}" if self.symmetric and self.high != 1 else (
                f"x{_amount(self.low)}")
            return f"{low}..x{_amount(self.high)}"
        if self.symmetric:
            return f"±{_amount(self.high)}"
        return f"{_signed(self.low)}..{_signed(self.high)}"

    def describe(self) -> str:
        """The rule, with the file's value once resolved: ``64 /4..x4``."""
        anchor = "the file's value" if self.anchor is None else format_value(self.anchor)
        return f"{anchor} {self.span()}"

    def to_toml(self) -> str:
        """The inline table a grammar file writes it as: ``{ times = 4 }``."""
        amount = _amount(self.high) if self.symmetric else (
            f"[{_amount(self.low)}, {_amount(self.high)}]")
        return f"{{ {self.relation.value} = {amount} }}"


def _amount(x: float) -> str:
    """A factor or offset for people: 4, not 4.0; 0.5."""
    return str(int(x)) if float(x).is_integer() else short_bound(x)


def _signed(x: float) -> str:
    return ("+" if x >= 0 else "") + _amount(x)
