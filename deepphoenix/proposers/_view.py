"""The *program view*: what a view-reading proposer (``learned``, ``t5-only``, a model
``proposer pretrain`` wrote) reads instead of the whole source. Its length grows with the
number of proposable sites, not with the file: a 330-line model file with ten sites is ten
short lines.

The form is fixed and program-independent (version `VIEW_VERSION`; a run and a model
record the version they were written in). One line per proposable site of the program, in
the grammar's order (the order its sites are declared in: a grammar groups related knobs,
and the same grammar gives the same order whatever the layout of the file). A candidate of
several files (a `Bundle`, which answers what the view asks of a `Program`) has one view:
the sites of all its files, each once, valued and spelled as the file that binds it last
(the one an edit is written to) writes it::

    NAME=VALUE KIND DOMAIN

* ``VALUE`` is written as an edit script writes it: a number as the file spells it (its
  own literal while unchanged), ``True``/``False``, a categorical value as its literal
  (``'adamw'``), a structural site's alternative by name, ``None`` for a nullable site
  left unset.
* ``KIND`` is the grammar's kind (``int``, ``float``, ``log-int``, ``log-float``,
  ``bool``, ``categorical``), or ``code`` for a structural site.
* ``DOMAIN`` is ``LOW..HIGH`` (an open end is ``-inf`` or ``inf``), followed by ``%K`` for
  an int grid (a multiple of K); a listed set, categorical choices and a structural site's
  alternatives are ``{A|B|C}``; a bool has none.

For example (nanoGPT's ``model.py`` shrunk to 2 x 64, under the ``nanogpt`` grammar,
whose domains are relative to the file)::

    n_layer=2 int 1..6
    n_head=2 int 1..8
    n_embd=64 int 32..256 %32
    block_size=64 log-int 64..256 %64
    dropout=0.0 float {0.0|0.05|0.1|0.2|0.3}
    bias=True bool
    norm=layernorm code {layernorm|rmsnorm}

No code around a site is shown: a site's name says what it is, and a view without code is
the same for a program whatever its formatting and comments.

What a view-reading model writes is an edit script (grounded on the parent like any edit
script): in the ``edits`` format the one item it changes (``n_layer=4``); in the
``source`` format the whole state of its numeric sites (`full_script`: ``n_layer=4;
n_head=2; n_embd=64; …``, in the view's order), which constrained decoding copies except
inside the values. Derived sites never appear (they are recomputed on the parent).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from deepphoenix.grammar import NUMERIC_KINDS, Kind, SiteSpec, Value, format_value
from deepphoenix.mutator import Edit, Program, TargetFormat, format_edit_script, render_value

__all__ = ["VIEW_VERSION", "ScriptSlot", "full_script", "view_sites", "view_target",
           "view_text"]

VIEW_VERSION = 1  # the form above; change it (and say how) when the form changes


@dataclass(frozen=True, slots=True)
class ScriptSlot:
    """Where a site's value is written in a `full_script`: ``text[start:end]``."""

    site: str
    start: int
    end: int
    literal: str


def view_sites(program: Program) -> tuple[SiteSpec, ...]:
    """The program's proposable sites in the view's order (the grammar's)."""
    proposable = {spec.name for spec in program.proposable}
    return tuple(spec for spec in program.grammar.sites if spec.name in proposable)


def view_text(program: Program, values: Mapping[str, Value] | None = None) -> str:
    """The view of `program`, or of its variant holding `values` (rendered in the
    program's literal style; no source is rendered)."""
    own = program.values
    current = own if values is None else values
    return "\n".join(f"{spec.name}={_written(program, spec, current, own)} "
                     f"{_kind(spec)}{_domain(spec)}" for spec in view_sites(program))


def full_script(program: Program, values: Mapping[str, Value] | None = None,
                ) -> tuple[str, tuple[ScriptSlot, ...]]:
    """``site=value; …`` for every numeric site of the view, and where each value is: what
    a view-reading model writes in the ``source`` format."""
    own = program.values
    current = own if values is None else values
    parts: list[str] = []
    slots: list[ScriptSlot] = []
    cursor = 0
    for spec in view_sites(program):
        if spec.kind not in NUMERIC_KINDS or current.get(spec.name) is None:
            continue
        head = f"{'; ' if parts else ''}{spec.name}="
        literal = _written(program, spec, current, own)
        start = cursor + len(head)
        slots.append(ScriptSlot(spec.name, start, start + len(literal), literal))
        parts.append(head + literal)
        cursor = start + len(literal)
    return "".join(parts), tuple(slots)


def view_target(program: Program, before: Mapping[str, Value], after: Mapping[str, Value],
                fmt: TargetFormat | str) -> str | None:
    """What a view-reading model should write to go from the variant holding `before` to
    the one holding `after` (both variants of `program`); None when they differ at no
    site the model writes."""
    fmt = TargetFormat(fmt)
    specs = view_sites(program)
    if fmt is TargetFormat.SOURCE:
        if all(before.get(s.name) == after.get(s.name) for s in specs
               if s.kind in NUMERIC_KINDS):
            return None
        return full_script(program, after)[0]
    edits = [Edit(s.name, after[s.name]) for s in specs
             if s.name in after and (before.get(s.name) != after[s.name]
                                     or type(before.get(s.name)) is not type(after[s.name]))]
    return format_edit_script(program, edits) if edits else None


def _written(program: Program, spec: SiteSpec, values: Mapping[str, Value],
             own: Mapping[str, Value]) -> str:
    value = values.get(spec.name)
    if value is None:
        return "None"  # a nullable site left unset
    if spec.structure is not None:
        return str(value)
    original = "" if spec.hidden else program.site(spec.name).literal
    if original and value == own.get(spec.name) and type(value) is type(own.get(spec.name)):
        return original  # the file's own spelling (6e-4 stays 6e-4)
    return render_value(spec, value, original)


def _kind(spec: SiteSpec) -> str:
    return "code" if spec.structure is not None else spec.kind.value


def _domain(spec: SiteSpec) -> str:
    if spec.kind is Kind.BOOL:
        return ""
    domain = spec.domain
    if spec.structure is not None:
        return " {" + "|".join(spec.structure.names) + "}"
    if spec.kind is Kind.CATEGORICAL:
        return " {" + "|".join(domain.choices) + "}"
    if domain.values:
        return " {" + "|".join(format_value(v) for v in domain.values) + "}"
    low = "-inf" if domain.low is None else _bound(domain.low)
    high = "inf" if domain.high is None else _bound(domain.high)
    grid = f" %{domain.multiple_of}" if domain.multiple_of else ""
    return f" {low}..{high}{grid}"


def _bound(bound: float) -> str:
    # 12 significant digits: a bound computed as 1e-4 / 10 reads 1e-05.
    if isinstance(bound, float) and not bound.is_integer():
        return format(bound, ".12g")
    return format_value(bound)
