"""Constrained decoding: the model may only copy its parent and choose inside site literals.

The parent builds a JSON-able *spec* from the program and the tokenizer; the worker turns it
into a `ConstraintAutomaton` whose `allowed` method is the ``prefix_allowed_tokens_fn`` of
``model.generate``. Every constrained sample is grounded by construction:

- ``source`` format: the output is the parent's token sequence with each numeric site
  literal replaced by digits inside the site's domain; derived sites whose inputs come
  earlier in the text are forced to their derived value; with ``forbid_no_op`` the last
  free site cannot close on the parent's values when nothing before it changed.
- ``edits`` format: the output is ``site=value`` for one proposable site, the value inside
  its domain and different from the parent's; for a structural site, ``site=NAME`` with
  NAME one of its other alternatives (a trie over the token sequences of those items).

Structural sites are searched in the edits format only: in the ``source`` format their
code is held as the parent wrote it (the model never writes code). A conditional site
(``when``) whose condition is false under the parent is held as written in both formats:
an edit to an inactive site is refused.

A site whose literal does not start and end on token boundaries (or is not a number) stays
as the parent wrote it. Float sites are written in decimal form (no exponent), at most a
few characters longer than the parent's literal. A site with listed `values` may only write
one of them (in decimal form), an int grid (`multiple_of`) only its multiples: prefixes are
pruned so that every complete literal lies in the site's domain. The automaton is pure
Python; it needs no torch.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from deepphoenix.grammar import INT_KINDS, NUMERIC_KINDS, Kind, compile_expression
from deepphoenix.mutator import Program, TargetFormat
from deepphoenix.seeds import EOS_ID, PAD_ID, UNK_ID

__all__ = ["ConstraintAutomaton", "build_constraint"]

_DECIMAL = re.compile(r"^([0-9]+)(\.([0-9]*))?$")
_NUMBERISH = re.compile(r"^[0-9.eE+-]+$")
_MAX_DIGITS = 18


def build_constraint(program: Program, tokenizer: Any, fmt: TargetFormat | str,
                     forbid_no_op: bool = True) -> dict[str, Any]:
    """The constraint spec for proposing from `program` with `tokenizer` (a
    `tokenizers.Tokenizer`)."""
    fmt = TargetFormat(fmt)
    vocab = tokenizer.get_vocab()
    decode = tokenizer.decode
    number_tokens = {}
    for index in vocab.values():
        if index <= UNK_ID:  # special tokens
            continue
        text = decode([index])
        if text and _NUMBERISH.match(text):
            number_tokens[str(index)] = text
    grammar = program.grammar
    env = {k: v for k, v in program.values.items()}
    spec: dict[str, Any] = {
        "format": fmt.value, "eos": EOS_ID, "pad": PAD_ID, "number_tokens": number_tokens,
        "env": env, "forbid_no_op": forbid_no_op,
    }
    if fmt is TargetFormat.EDITS:
        choices = []
        sequences: list[list[int]] = []
        for site in program.sites:
            site_spec = grammar.site(site.name)
            if not grammar.active(site_spec, program.values):
                continue  # conditional, and its condition is false: it may not change
            if site_spec.proposable and site_spec.structure is not None:
                sequences.extend(
                    tokenizer.encode(f"{site.name}={name}", add_special_tokens=False).ids
                    for name in site_spec.structure.names
                    if not (forbid_no_op and name == site.value))
                continue
            if not site_spec.proposable or site_spec.kind not in NUMERIC_KINDS:
                continue
            prefix = tokenizer.encode(f"{site.name}=", add_special_tokens=False).ids
            choices.append({"prefix": prefix, "slot": _slot(program, site.name, site.literal)})
        spec["choices"] = choices
        spec["sequences"] = sequences
        return spec
    encoding = tokenizer.encode(program.text, add_special_tokens=False)
    ids, offsets = encoding.ids, encoding.offsets
    starts = {start: i for i, (start, _end) in enumerate(offsets)}
    ends = {end: i + 1 for i, (_start, end) in enumerate(offsets)}
    segments: list[dict[str, Any]] = []
    cursor = 0
    for site in program.sites:
        site_spec = grammar.site(site.name)
        numeric = site_spec.kind in NUMERIC_KINDS
        # A conditional site whose condition is false under the parent stays as written.
        free = (site_spec.proposable and grammar.active(site_spec, program.values)
                ) or site_spec.derived
        aligned = site.start in starts and site.end in ends and _NUMBERISH.match(site.literal)
        if not (numeric and free and aligned):
            continue
        first, last = starts[site.start], ends[site.end]
        if ids[cursor:first]:
            segments.append({"fixed": ids[cursor:first]})
        segments.append({"slot": _slot(program, site.name, site.literal)})
        cursor = last
    if ids[cursor:]:
        segments.append({"fixed": ids[cursor:]})
    spec["segments"] = segments
    last_free = max((i for i, seg in enumerate(segments)
                     if "slot" in seg and seg["slot"]["derive"] is None), default=-1)
    spec["last_free"] = last_free
    return spec


def _slot(program: Program, name: str, literal: str) -> dict[str, Any]:
    site_spec = program.grammar.site(name)
    domain, integral = site_spec.domain, site_spec.kind in INT_KINDS
    listed = None
    if site_spec.proposable and domain.values:
        listed = sorted(str(int(v)) if integral else _decimal(float(v)) for v in domain.values
                        if v >= 0 and (domain.low is None or v >= domain.low)
                        and (domain.high is None or v <= domain.high))
    low = domain.low if site_spec.proposable else None
    if site_spec.proposable and site_spec.kind in (Kind.LOG_INT, Kind.LOG_FLOAT):
        low = max(low or 0, 1 if integral else 0)  # positive: never zero
    return {
        "site": name,
        "kind": "int" if integral else "float",
        "low": low,
        "high": domain.high if site_spec.proposable else None,
        "values": listed,
        "grid": domain.multiple_of if site_spec.proposable else None,
        "parent": literal,
        "derive": site_spec.derive.text if site_spec.derive is not None else None,
        "derive_names": sorted(site_spec.derive.names) if site_spec.derive is not None else [],
    }


def _decimal(value: float) -> str:
    """A float written without an exponent: 0.0003, 1.0."""
    text = f"{value:.20f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _int_prefix_ok(text: str, low: float | None, high: float | None,
                   forbidden: float | None = None, grid: int | None = None) -> bool:
    """Whether some int in [low, high] (a multiple of `grid`, if given) other than
    `forbidden` is written starting with `text` (no leading zeros)."""
    if not text:
        return True
    if len(text) > _MAX_DIGITS or (len(text) > 1 and text[0] == "0"):
        return False
    value = int(text)
    if high is None:
        return True
    found = 0
    for k in range(_MAX_DIGITS - len(text) + 1):
        smallest, largest = value * 10**k, (value + 1) * 10**k - 1
        if smallest > high:
            break
        lo = smallest if low is None else max(smallest, math.ceil(low))
        hi = min(largest, math.floor(high))
        if grid:
            lo = -(-lo // grid) * grid
            hi = hi // grid * grid
        if lo <= hi:
            count = hi - lo + 1 if not grid else (hi - lo) // grid + 1
            on_grid = not grid or forbidden is None or forbidden % grid == 0
            if (forbidden is not None and lo <= forbidden <= hi and float(forbidden).is_integer()
                    and on_grid):
                count -= 1
            found += count
            if found > 0:
                return True
        if value == 0:
            break
    return False


def _float_prefix_ok(text: str, low: float | None, high: float | None, max_len: int) -> bool:
    """Whether a decimal float in [low, high] of at most `max_len` characters starts with
    `text`."""
    if not text:
        return True
    match = _DECIMAL.match(text)
    if match is None or len(text) > max_len:
        return False
    whole, fraction = match.group(1), match.group(3)
    if len(whole) > 1 and whole[0] == "0":
        return False
    lo = -math.inf if low is None else low
    hi = math.inf if high is None else high
    if fraction is None:  # more integer digits may follow, then a fraction
        base = int(whole)
        for k in range(max_len - len(whole) + 1):
            if base == 0 and k > 0:
                break
            start, stop = base * 10**k, (base + 1) * 10**k  # [start, stop) reachable
            if start > hi:
                return False
            if stop > lo:
                return True
        return False
    value = float(f"{whole}.{fraction or '0'}")
    if len(text) == max_len:
        return lo <= value <= hi
    return value <= hi and value + 10.0 ** -len(fraction) > lo


def _in_bounds(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


@dataclass
class _State:
    segment: int = 0
    position: int = 0  # within a fixed (or forced) segment
    digits: str = ""  # inside a slot
    forced: list[int] | None = None
    done: bool = False


class ConstraintAutomaton:
    """Replays a generated prefix through the spec and says which tokens may come next."""

    def __init__(self, spec: dict[str, Any], encode_number: Any = None) -> None:
        self.spec = spec
        self.eos = int(spec["eos"])
        self.pad = int(spec["pad"])
        self.numbers = {int(k): v for k, v in spec["number_tokens"].items()}
        self.digit_tokens = {k: v for k, v in self.numbers.items() if v.isdigit()}
        self.decimal_tokens = {k: v for k, v in self.numbers.items()
                               if all(c.isdigit() or c == "." for c in v)}
        self.encode_number = encode_number
        self.format = spec["format"]
        self._derive = {}
        self._slot_sites = {seg["slot"]["site"] for seg in spec.get("segments", [])
                            if "slot" in seg}
        for segment in spec.get("segments", []):
            slot = segment.get("slot")
            if slot and slot["derive"]:
                names = set(spec["env"]) | set(slot["derive_names"])
                self._derive[slot["site"]] = compile_expression(slot["derive"], names)

    # -- slots ---------------------------------------------------------------------------
    def _slot_tokens(self, slot: dict[str, Any], text: str,
                     forbidden: str | None = None) -> list[int]:
        tokens = self.digit_tokens if slot["kind"] == "int" else self.decimal_tokens
        if slot.get("values") is not None:
            avoid = None if forbidden is None else _number(forbidden)
            return [t for t, s in tokens.items() if any(
                v.startswith(text + s) and _number(v) != avoid for v in slot["values"])]
        if slot["kind"] == "int":
            avoid = None if forbidden is None else _number(forbidden)
            return [t for t, s in tokens.items()
                    if _int_prefix_ok(text + s, slot["low"], slot["high"], avoid,
                                      slot.get("grid"))]
        return [t for t, s in tokens.items() if self._extends(slot, text + s)]

    def _extends(self, slot: dict[str, Any], text: str) -> bool:
        if slot.get("values") is not None:
            return any(v.startswith(text) for v in slot["values"])
        if slot["kind"] == "int":
            return text.isdigit() and _int_prefix_ok(text, slot["low"], slot["high"],
                                                      grid=slot.get("grid"))
        return _float_prefix_ok(text, slot["low"], slot["high"], _float_width(slot))

    def _slot_complete(self, slot: dict[str, Any], text: str, forbidden: str | None) -> bool:
        if not text:
            return False
        if slot["kind"] == "int":
            if len(text) > 1 and text[0] == "0":
                return False
            value: float = int(text)
        else:
            match = _DECIMAL.match(text)
            if match is None or text.endswith(".") or (
                    len(match.group(1)) > 1 and text[0] == "0"):
                return False
            value = float(text)
        if forbidden is not None and value == _number(forbidden):
            return False
        if slot.get("values") is not None:
            return text in slot["values"]
        if slot.get("grid") and value % slot["grid"]:
            return False
        return _in_bounds(value, slot["low"], slot["high"])

    # -- source format -------------------------------------------------------------------
    def _next_first(self, index: int) -> int:
        segments = self.spec["segments"]
        if index >= len(segments):
            return self.eos
        segment = segments[index]
        if "fixed" in segment:
            return int(segment["fixed"][0])
        return -1  # two adjacent slots cannot be told apart; never built that way

    def _source_allowed(self, generated: list[int]) -> list[int]:
        segments = self.spec["segments"]
        values: dict[str, str] = {}
        state = _State()
        changed = False

        def enter(index: int) -> None:
            state.segment, state.position, state.digits, state.forced = index, 0, "", None
            if index < len(segments) and "slot" in segments[index]:
                slot = segments[index]["slot"]
                forced = self._forced(slot, values)
                if forced is not None:
                    state.forced = forced

        enter(0)
        for token in generated:
            if state.done:
                return [self.pad]
            while True:
                index = state.segment
                if index >= len(segments):
                    if token == self.eos:
                        state.done = True
                    break
                segment = segments[index]
                fixed = segment.get("fixed") if "fixed" in segment else state.forced
                if fixed is not None:
                    if token != fixed[state.position]:
                        return [self.eos]  # off the rails; end it (grounding rejects it)
                    state.position += 1
                    if state.position == len(fixed):
                        if "slot" in segment:
                            values[segment["slot"]["site"]] = self._forced_text(
                                segment["slot"], values)
                        enter(index + 1)
                    break
                slot = segment["slot"]
                text = self.digit_tokens.get(token) if slot["kind"] == "int" else (
                    self.decimal_tokens.get(token))
                if text is not None and self._extends(slot, state.digits + text):
                    state.digits += text
                    break
                values[slot["site"]] = state.digits
                if slot["derive"] is None and _number(state.digits) != _number(slot["parent"]):
                    changed = True
                enter(index + 1)
                # the token belongs to the next segment: loop to consume it there
        if state.done:
            return [self.pad]
        index = state.segment
        if index >= len(segments):
            return [self.eos]
        segment = segments[index]
        fixed = segment.get("fixed") if "fixed" in segment else state.forced
        if fixed is not None:
            return [int(fixed[state.position])]
        slot = segment["slot"]
        forbidden = None
        if (self.spec.get("forbid_no_op") and index == self.spec.get("last_free")
                and not changed and slot["derive"] is None):
            forbidden = slot["parent"]
        allowed = self._slot_tokens(slot, state.digits, forbidden)
        if self._slot_complete(slot, state.digits, forbidden):
            allowed.append(self._next_first(index + 1))
        return allowed or [self._next_first(index + 1)]

    def _forced(self, slot: dict[str, Any], values: dict[str, str]) -> list[int] | None:
        if slot["derive"] is None or self.encode_number is None:
            return None
        if any(n in self._slot_sites and n not in values for n in slot["derive_names"]):
            return None  # an input comes later in the text: the slot stays free
        text = self._forced_text(slot, values)
        return None if text is None else list(self.encode_number(text))

    def _forced_text(self, slot: dict[str, Any], values: dict[str, str]) -> str:
        env: dict[str, Any] = dict(self.spec["env"])
        for name in slot["derive_names"]:
            if name in values:
                env[name] = _number(values[name])
        try:
            value = self._derive[slot["site"]].evaluate(env)
        except ArithmeticError:
            return slot["parent"]
        if isinstance(value, float) and value.is_integer() and slot["kind"] == "int":
            value = int(value)
        return str(value)

    # -- edits format --------------------------------------------------------------------
    def _edits_allowed(self, generated: list[int]) -> list[int]:
        choices = self.spec["choices"]
        sequences = self.spec.get("sequences", [])
        live = list(range(len(choices)))
        live_items = list(range(len(sequences)))  # whole `site=NAME` items (structural)
        position = 0
        chosen: int | None = None
        digits = ""
        for token in generated:
            if chosen is None:
                if token == self.eos and any(len(sequences[i]) == position for i in live_items):
                    return [self.pad]
                live = [c for c in live if position < len(choices[c]["prefix"])
                        and choices[c]["prefix"][position] == token]
                live_items = [i for i in live_items if position < len(sequences[i])
                              and sequences[i][position] == token]
                position += 1
                if not live and not live_items:
                    return [self.eos]
                complete = [c for c in live if len(choices[c]["prefix"]) == position]
                if complete:
                    chosen = complete[0]
                continue
            if token == self.eos:
                return [self.pad]
            text = self.digit_tokens.get(token) if choices[chosen]["slot"]["kind"] == "int" else (
                self.decimal_tokens.get(token))
            digits += text or ""
        if chosen is None:
            starts = {int(choices[c]["prefix"][position]) for c in live}
            starts.update(int(sequences[i][position]) for i in live_items
                          if position < len(sequences[i]))
            if any(len(sequences[i]) == position for i in live_items):
                starts.add(self.eos)
            return sorted(starts)
        slot = choices[chosen]["slot"]
        forbidden = slot["parent"] if self.spec.get("forbid_no_op") else None
        allowed = self._slot_tokens(slot, digits, forbidden)
        if self._slot_complete(slot, digits, forbidden):
            allowed.append(self.eos)
        return allowed or [self.eos]

    def allowed(self, generated: list[int]) -> list[int]:
        """Tokens that may follow `generated` (decoder output without the start token)."""
        if self.format == TargetFormat.EDITS.value:
            return self._edits_allowed(generated)
        return self._source_allowed(generated)


def _float_width(slot: dict[str, Any]) -> int:
    return max(len(slot["parent"]) + 2, 10)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")
