"""The procedural code-refinement dataset (paper, section 3), generated from the grammar
by the random proposer.

Each pair's input is an *unrefined* program: the template (the seed) with every proposable
site drawn uniformly from its domain (for the t5 grammar: depths 1–8, d_ff 64–4096,
heads 1–16) and derived sites recomputed (d_kv = d_model // heads). Its target is the
*refined* program: one refinement away (depth or heads ±1, or d_ff ±1–50%), written as
the whole source (format ``source``) or as an edit script (format ``edits``). For a
proposer that reads the program view (``learned``), the input is the unrefined program's
view and the target an edit script (``proposers._view``). Pairs are drawn in order from
one seeded RNG, so the first k pairs do not depend on how many follow.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepphoenix.errors import ConfigError, SourceError
from deepphoenix.grammar import NUMERIC_KINDS, Value
from deepphoenix.mutator import Edit, Program, TargetFormat, format_edit_script
from deepphoenix.proposers._refiner import Refiner
from deepphoenix.proposers._view import view_sites, view_target, view_text
from deepphoenix.store_io import write_text_atomic

__all__ = ["RefinementPair", "iter_pairs", "make_dataset", "read_pairs", "write_pairs"]

_REDRAWS = 16  # refinements drawn for one unrefined view before it is dropped


@dataclass(frozen=True, slots=True)
class RefinementPair:
    """An unrefined source, its refinement target, and the edits between them."""

    input: str
    target: str
    edits: tuple[Edit, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input, "target": self.target,
                "edits": [e.to_dict() for e in self.edits]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RefinementPair:
        return cls(input=data["input"], target=data["target"],
                   edits=tuple(Edit.from_dict(e) for e in data.get("edits", [])))


def iter_pairs(template: Program, seed: int, fmt: TargetFormat | str = TargetFormat.SOURCE,
               proposer: Refiner | None = None,
               view: bool = False) -> Iterator[RefinementPair]:
    """An endless, deterministic stream of refinement pairs in the template's style.
    `view`: the input is the unrefined program's view and the target what a view-reading
    model writes (`view_target`); no source is rendered. In the ``source`` format such a
    model writes numeric sites only, so a refinement of another site is skipped."""
    fmt = TargetFormat(fmt)
    proposer = proposer or Refiner(max_edits=1)
    if not template.proposable:
        raise ConfigError("the template has no proposable sites to refine")
    if view and fmt is TargetFormat.SOURCE and not any(
            spec.kind in NUMERIC_KINDS for spec in view_sites(template)):
        raise ConfigError("in the source format a view-reading proposer writes numeric "
                          "sites, and this grammar has none; use --format edits")
    rng = random.Random(seed)
    while True:
        unrefined = proposer.sample_values(template, rng)
        if view:
            pair = _view_pair(template, unrefined, proposer, rng, fmt)
            if pair is not None:
                yield pair
            continue
        refined = proposer.refine_values(template, unrefined, rng)
        if refined is None:
            continue
        values, edits = refined
        source_in, _ = template.render(unrefined)
        if fmt is TargetFormat.SOURCE:
            target = template.render(values)[0].source
        else:
            target = format_edit_script(template, edits)
        yield RefinementPair(source_in.source, target, edits)


def _view_pair(template: Program, unrefined: dict[str, Value], proposer: Refiner,
               rng: random.Random, fmt: TargetFormat) -> RefinementPair | None:
    """A view pair from `unrefined`: its refinement is drawn again (a few times) while it
    moves only sites the target does not write (the source format's non-numeric ones), as
    drawing a whole program costs more than a move."""
    for _ in range(_REDRAWS):
        refined = proposer.refine_values(template, unrefined, rng)
        if refined is None:
            return None
        values, edits = refined
        target = view_target(template, unrefined, values, fmt)
        if target is not None:
            return RefinementPair(view_text(template, unrefined), target, edits)
    return None


def make_dataset(template: Program, n: int, seed: int,
                 fmt: TargetFormat | str = TargetFormat.SOURCE,
                 view: bool = False) -> list[RefinementPair]:
    """The first `n` pairs of `iter_pairs` (`view`: of program views)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"Expected int >= 1 but got n={n!r} (type={type(n).__name__})")
    stream = iter_pairs(template, seed, fmt, view=view)
    return [next(stream) for _ in range(n)]


def write_pairs(pairs: Iterable[RefinementPair], path: Path,
                fmt: TargetFormat | str = TargetFormat.SOURCE) -> int:
    """Write JSON lines (each with its format) atomically; return how many."""
    fmt = TargetFormat(fmt)
    lines = [json.dumps({"format": fmt.value, **p.to_dict()}, separators=(",", ":"))
             for p in pairs]
    write_text_atomic(path, "\n".join(lines) + "\n")
    return len(lines)


def read_pairs(path: Path) -> tuple[list[RefinementPair], str]:
    """Read a JSON-lines dataset and its format; `SourceError` names the bad line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: not a JSON-lines dataset ({type(exc).__name__})") from None
    pairs = []
    formats = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            pairs.append(RefinementPair.from_dict(row))
            formats.add(TargetFormat(row.get("format", "source")).value)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SourceError(f"{path}:{number}: not a refinement pair ({exc})") from None
    if not pairs:
        raise SourceError(f"{path}: holds no pairs")
    if len(formats) > 1:
        raise SourceError(f"{path}: mixes formats {sorted(formats)}")
    return pairs, formats.pop()
