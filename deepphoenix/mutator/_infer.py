"""Infer a grammar from any source: numeric and bool literals bound to a name, attribute,
keyword, class field or parameter default become sites, unless a rule says the literal is
almost never a knob (see `infer`); kept sites are grouped (model shape, regularisation,
optimisation, initialisation, other).

Default domains (v is the value found):

- int v > 0: ``[max(1, v // 4), max(4 v, v + 8)]``; step ±1 when that range is at most 32
  wide, else scale ±1–50%. int 0: ``[0, 8]``, step ±1. int v < 0: ``[min(4 v, v - 8), -1]``.
- float in (0, 1) and at least 0.01: ``[v / 4, min(1, 4 v)]``; below 0.01 or above 1000:
  log-float ``[v / 10, 10 v]``; other positive floats ``[v / 4, 4 v]``; all scale ±1–50%.
  0.0: ``[0, 1]``, resample. Negative floats: ``[4 v, v / 4]``, scale.
- bool: flip.

Repeated bindings of the same selector get ``#k`` indices; repeated names get ``_2``, ``_3``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Any

import libcst as cst

from deepphoenix.grammar import (
    BINDING_FORMS,
    Domain,
    Form,
    Grammar,
    Kind,
    Operator,
    OperatorKind,
    Selector,
    SiteSpec,
    Value,
    default_operator,
)
from deepphoenix.mutator._bindings import Binding, collect_bindings
from deepphoenix.mutator._literal import LiteralKind
from deepphoenix.mutator._source import parse_module

__all__ = ["GROUPS", "Inference", "Skipped", "infer", "infer_grammar", "infer_spec"]


def infer_spec(name: str, selector: Selector, value: Value) -> SiteSpec:
    """A site with a sensible default domain around `value` (see the module docstring)."""
    if isinstance(value, bool):
        return SiteSpec(name, (selector,), Kind.BOOL, Domain(), Operator(OperatorKind.RESAMPLE))
    if isinstance(value, int):
        if value > 0:
            low, high = max(1, value // 4), max(4 * value, value + 8)
        elif value == 0:
            low, high = 0, 8
        else:
            low, high = min(4 * value, value - 8), -1
        return SiteSpec(name, (selector,), Kind.INT, Domain(low, high),
                        default_operator(Kind.INT, low, high))
    assert isinstance(value, float)
    scale = Operator(OperatorKind.SCALE, low=0.01, high=0.5)
    if value == 0.0:
        return SiteSpec(name, (selector,), Kind.FLOAT, Domain(0.0, 1.0),
                        Operator(OperatorKind.RESAMPLE))
    if value < 0:
        return SiteSpec(name, (selector,), Kind.FLOAT, Domain(4 * value, value / 4), scale)
    if value < 0.01 or value > 1000:
        return SiteSpec(name, (selector,), Kind.LOG_FLOAT, Domain(value / 10, value * 10), scale)
    if value < 1:
        return SiteSpec(name, (selector,), Kind.FLOAT, Domain(value / 4, min(1.0, 4 * value)),
                        scale)
    return SiteSpec(name, (selector,), Kind.FLOAT, Domain(value / 4, value * 4), scale)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A literal `infer` leaves out, and the rule that says why."""

    label: str
    line: int
    literal: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"binding": self.label, "line": self.line, "literal": self.literal,
                "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Inference:
    """What `infer` found: the grammar of kept sites (document order, each described by
    its group), and the literals it skipped with their reasons."""

    grammar: Grammar
    skipped: tuple[Skipped, ...]

    def groups(self) -> dict[str, tuple[SiteSpec, ...]]:
        """Kept sites by group, groups in `GROUPS` order (model shape first)."""
        out: dict[str, list[SiteSpec]] = {}
        for spec in sorted(self.grammar.sites, key=lambda s: GROUPS.index(s.description)):
            out.setdefault(spec.description, []).append(spec)
        return {k: tuple(v) for k, v in out.items()}


# Groups of kept sites, in the order a researcher reads them.
GROUPS = ("model shape", "regularisation", "optimisation", "initialisation", "other")
_GROUP_WORDS = (
    ("model shape", ("layer", "head", "embd", "embed", "hidden", "d_model", "d_ff", "d_kv",
                     "feedforward", "intermediate", "block_size", "position", "width",
                     "depth", "nhead", "n_inner", "kv", "expert", "window", "rope", "ratio",
                     "size")),
    ("regularisation", ("dropout", "pdrop", "drop", "decay", "eps", "epsilon", "clip",
                        "smoothing", "bias", "norm")),
    ("optimisation", ("lr", "learning_rate", "beta", "warmup", "iters", "steps", "batch",
                      "momentum", "epochs", "accumulation")),
    ("initialisation", ("std", "init", "range", "gain", "scale")),
)

# Rules, checked in order: the first that fits a literal skips it.
_AXES = frozenset({"dim", "dims", "axis", "axes", "dim0", "dim1", "keepdim", "diagonal",
                   "start_dim", "end_dim"})
_FLAGS = frozenset({"inplace", "batch_first", "exist_ok", "non_blocking", "requires_grad",
                    "persistent", "strict", "use_cache", "need_weights", "mask_check",
                    "enable_nested_tensor", "fused", "foreach", "capturable", "do_sample",
                    "verbose", "debug", "training", "align_corners", "return_dict"})
_FLAG_PREFIXES = ("is_", "return_", "output_", "supports_", "use_return", "has_")
_BOOKKEEPING = ("interval", "eval_", "log_", "checkpoint", "save", "seed", "compile",
                "num_workers", "wandb", "parallel", "profile", "device", "pin_memory")
_ID_SUFFIXES = ("_id", "_ids")
_IDS = frozenset({"ignore_index", "padding_idx", "pad_idx", "layer_idx", "blank_idx", "idx"})
_WARNING_CALLEES = ("warn", "warning", "warnings.warn", "logger.*", "logging.*", "print")
_RUNTIME_FUNCTIONS = ("forward", "__call__", "generate", "_attn", "_sa_block", "_ff_block")
_TENSOR_ARGUMENTS = frozenset({"mean", "num_samples", "k", "start", "end", "step", "offset",
                               "min", "max", "value", "fill_value", "p"})


def infer_grammar(text: str, path: str | None = None, module: cst.Module | None = None,
                  name: str = "inferred") -> Grammar:
    """A grammar whose sites are the numeric and bool literal bindings of `text` that are
    likely knobs (see `infer`)."""
    return infer(text, path, module, name).grammar


def infer(text: str, path: str | None = None, module: cst.Module | None = None,
          name: str = "inferred") -> Inference:
    """Infer a grammar from a source, and say which literals it skipped and why.

    Skipped: dimension and axis arguments, ids and ignore indices, flags (``is_causal``,
    ``inplace``, ``use_cache``, ``is_*``/``output_*``…), logging, evaluation, checkpoint
    and system settings, ``stacklevel`` and other arguments of warnings and logging,
    literals of preset tables (inside ``from_pretrained``-style functions, or a keyword
    repeated across three or more ``dict(…)`` entries), constants local to a function,
    parameters of ``forward``/``generate``, arguments of functional tensor ops
    (``F.softmax(dim=…)``, ``torch.multinomial(num_samples=…)``), the mean of an init,
    sentinels (-1), and names rebound later (loop state such as ``iter_num``).
    """
    module = module if module is not None else parse_module(text, path)
    everything = collect_bindings(module, text)
    literal = [
        b for b in everything
        if b.form in BINDING_FORMS
        and b.literal is not None and b.literal[0] in (LiteralKind.NUMBER, LiteralKind.BOOL)
        and _finite(b.literal[1])
    ]
    rebound = Counter((b.target, b.owner) for b in everything if b.form is Form.NAME)
    rebound.update(_augmented(module))
    table_keys = Counter(b.target for b in everything
                         if b.form is Form.KEYWORD and b.owner == "dict")
    used: Counter[str] = Counter()
    specs: list[SiteSpec] = []
    skipped: list[Skipped] = []
    for binding in literal:
        assert binding.literal is not None
        reason = _skip_reason(binding, rebound, table_keys)
        if reason is not None:
            skipped.append(Skipped(binding.label, binding.line, text[binding.start:binding.end],
                                   reason))
            continue
        selector = _selector(binding, everything)
        used[binding.target] += 1
        site_name = binding.target if used[binding.target] == 1 else (
            f"{binding.target}_{used[binding.target]}"
        )
        while site_name in {s.name for s in specs}:
            used[binding.target] += 1
            site_name = f"{binding.target}_{used[binding.target]}"
        spec = infer_spec(site_name, selector, binding.literal[1])
        specs.append(replace(spec, description=_group(binding.target)))
    grammar = Grammar(
        name=name, sites=tuple(specs), description=f"inferred from {path or 'a source'}",
        origin="inferred",
    )
    return Inference(grammar, tuple(skipped))


def _skip_reason(binding: Binding, rebound: Counter[tuple[str, str | None]],
                 table_keys: Counter[str]) -> str | None:
    target, owner = binding.target, binding.owner or ""
    last = owner.rsplit(".", 1)[-1]
    lowered = target.lower()
    scope = binding.scope or ""
    value = binding.literal[1] if binding.literal is not None else None
    if lowered in _AXES:
        return "a dimension or axis argument"
    if lowered.endswith(_ID_SUFFIXES) or lowered in _IDS:
        return "an id or index"
    if lowered in _FLAGS or lowered.startswith(_FLAG_PREFIXES):
        return "a flag that changes what the program computes, not how well"
    if lowered == "stacklevel" or any(fnmatchcase(owner, c) for c in _WARNING_CALLEES):
        return "an argument of a warning or log call"
    if "pretrained" in scope or "preset" in scope.lower():
        return "a preset table entry (inside from_pretrained)"
    if binding.form is Form.KEYWORD and owner == "dict" and table_keys[target] >= 3:
        return "a preset table entry (a keyword repeated across dict(...) entries)"
    if any(word in lowered for word in _BOOKKEEPING):
        return "logging, evaluation, checkpoint or system setting"
    if binding.form is Form.NAME and binding.owner is not None:
        return "a constant local to a function"
    if binding.form is Form.PARAMETER and last in _RUNTIME_FUNCTIONS:
        return f"a runtime argument of {last}()"
    if binding.form is Form.KEYWORD and _functional(owner) and "init" not in owner:
        return "an argument of a functional tensor op"
    if binding.form is Form.KEYWORD and lowered in _TENSOR_ARGUMENTS:
        return "an argument of a tensor op (e.g. the mean of an init)"
    if isinstance(value, int) and not isinstance(value, bool) and value == -1:
        return "a sentinel (-1)"
    if binding.form is Form.NAME and rebound[(target, binding.owner)] > 1:
        return "rebound later in the file (state, not a setting)"
    return None


def _functional(owner: str) -> bool:
    """``F.softmax``, ``torch.cat``, ``nn.functional.gelu``: lower-case functions of torch."""
    head, _, last = owner.rpartition(".")
    return bool(last) and last[:1].islower() and head.split(".")[0] in (
        "F", "torch", "functional", "nn") and "nn.init" not in owner


def _group(target: str) -> str:
    lowered = target.lower()
    for group, words in _GROUP_WORDS:
        if any(word in lowered for word in words):
            return group
    return "other"


class _AugmentedNames(cst.CSTVisitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if isinstance(node.target, cst.Name):
            self.names.append(node.target.value)


def _augmented(module: cst.Module) -> Counter[tuple[str, str | None]]:
    """Module-level names changed with ``+=`` and friends (scoped names are skipped as
    locals anyway)."""
    visitor = _AugmentedNames()
    module.visit(visitor)
    return Counter((name, None) for name in visitor.names)


def _finite(value: Value) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def _selector(binding: Binding, everything: list[Binding]) -> Selector:
    owner = binding.owner if binding.owner is not None and "*" not in binding.owner else "*"
    plain = Selector(binding.form, binding.target, owner)
    # Index among every binding the selector picks (literal or not), as `find_sites` counts.
    matching = [b for b in everything if b.selected_by(plain)]
    if len(matching) == 1:
        return plain
    index = next(i for i, b in enumerate(matching, start=1) if b.start == binding.start)
    return Selector(binding.form, binding.target, owner, index)
