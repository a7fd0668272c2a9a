"""Grounding: reduce untrusted text (a model's output) to edits at grammar sites and apply
them to the trusted parent. Nothing in the text is executed.

Two target formats:

- ``source``: the whole refined program (the paper). It is parsed and diffed against the
  parent; any change outside the sites rejects it as ungrounded.
- ``edits``: a compact edit script, ``site=value`` items separated by ``;`` or newlines,
  e.g. ``d_ff=1331``. Values are literals of the site's kind, read without evaluation; a
  structural site's value is an alternative's name (``mlp=swiglu``): the code comes from
  the grammar, never from the text.

Derived values the text writes are checked against the derivation, not silently fixed;
derived sites it does not mention are recomputed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum

from deepphoenix.errors import ParseError
from deepphoenix.grammar import EvaluationError, Value
from deepphoenix.mutator._diff import diff_text
from deepphoenix.mutator._literal import parse_value_text, render_value
from deepphoenix.mutator._program import Edit, Mutation, Program
from deepphoenix.outcome import Outcome

__all__ = ["TargetFormat", "format_edit_script", "ground", "parse_edit_script"]

_ITEM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$", re.S)


class TargetFormat(StrEnum):
    """What a proposer model writes."""

    SOURCE = "source"
    EDITS = "edits"


def format_edit_script(program: Program, edits: Iterable[Edit]) -> str:
    """``site=value; …`` for edits at sites of `program`, literals in the source's style."""
    items = []
    for edit in edits:
        spec = program.grammar.site(edit.site)
        original = "" if spec.hidden else program.site(edit.site).literal
        items.append(f"{edit.site}={render_value(spec, edit.value, original)}")
    return "; ".join(items)


def parse_edit_script(program: Program, text: str) -> tuple[list[Edit], Mutation | None]:
    """Edits from a script, or a rejecting `Mutation` saying why the script is unusable."""
    items = [part for part in re.split(r"[;\n]", text) if part.strip()]
    if not items:
        return [], Mutation(Outcome.NO_OP, "the edit script is empty")
    edits: list[Edit] = []
    seen: set[str] = set()
    for item in items:
        match = _ITEM.match(item)
        if match is None:
            return [], Mutation(Outcome.UNPARSEABLE, f"{item.strip()!r} is not site=value")
        name, value_text = match.groups()
        if not program.grammar.has_site(name) or not program.editable(name):
            return [], Mutation(Outcome.UNGROUNDED, f"{name!r} is not a site of the parent")
        spec = program.grammar.site(name)
        if not spec.mutable and not spec.derived:
            return [], Mutation(Outcome.UNGROUNDED, f"site {name!r} is fixed")
        if name in seen:
            return [], Mutation(Outcome.UNPARSEABLE, f"site {name!r} is edited twice")
        seen.add(name)
        value = parse_value_text(spec, value_text)
        if value is None and spec.structure is not None:
            return [], Mutation(
                Outcome.UNPARSEABLE, f"{name}={value_text[:40]!r} is not one of its "
                f"alternatives ({', '.join(spec.structure.names)})")
        if value is None:
            kind = f"{_article(spec.kind)} {spec.kind}"
            return [], Mutation(
                Outcome.UNPARSEABLE, f"{name}={value_text[:40]!r} is not {kind} literal"
            )
        edits.append(Edit(name, value))
    return edits, None


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def ground(parent: Program, text: str, fmt: TargetFormat | str = TargetFormat.SOURCE) -> Mutation:
    """Reduce `text` to edits at the parent's sites and apply them to the parent.

    Outcomes: `OK`, `UNPARSEABLE`, `UNGROUNDED`, `NO_OP`, `OUT_OF_DOMAIN`, `INVARIANT`.
    (`DUPLICATE` is decided by the caller, who knows the batch.)
    """
    fmt = TargetFormat(fmt)
    values: dict[str, Value] = parent.values
    if fmt is TargetFormat.SOURCE:
        try:
            diff = diff_text(parent, text)
        except ParseError as exc:
            return Mutation(Outcome.UNPARSEABLE, str(exc).removeprefix("<source>:"))
        if not diff.grounded:
            return Mutation(Outcome.UNGROUNDED, "; ".join(diff.ungrounded))
        written = diff.edits
    else:
        written_list, rejected = parse_edit_script(parent, text)
        if rejected is not None:
            return rejected
        written = tuple(written_list)
    for edit in written:
        spec = parent.grammar.site(edit.site)
        if not spec.mutable and not spec.derived:
            return Mutation(Outcome.UNGROUNDED, f"site {edit.site!r} is fixed")
    explicit = {e.site for e in written}
    values.update((e.site, e.value) for e in written)
    try:
        derived = parent.grammar.derive(values)
    except EvaluationError as exc:
        return Mutation(Outcome.INVARIANT, f"derivation fails: {exc}")
    for spec in parent.grammar.sites:
        recompute = fmt is TargetFormat.EDITS or spec.name not in parent.present
        # A derivation whose inputs include an optional site the parent lacks is not
        # computed (nanogpt's min_lr in a model file without learning_rate).
        if spec.derived and spec.name not in explicit and recompute and spec.name in derived:
            values[spec.name] = derived[spec.name]
    for edit in written:  # as `Program.apply`: a conditional site changes only while active
        spec = parent.grammar.site(edit.site)
        if (not parent.grammar.active(spec, values)
                and values[edit.site] != parent.values.get(edit.site)):
            return Mutation(Outcome.INVARIANT, f"site {edit.site!r} is inactive (when "
                            f"{spec.when.text if spec.when else ''} does not hold)")
    return parent.with_values(values)
