"""Sources rendered from what a run trusts: its seed and the site values recorded for each
variant (the trusted parent plus grounded edits), never a stored text that something
could have rewritten. `best.py` (a run over several files: `best/`, each file at its
path), `run_best.py` and `deepphoenix lineage best` come from here; `render_mismatches` re-renders
every stored source (a bundle's every file) and hash, checks every stored score against
the database's own records, and lists what does not match.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepphoenix.engine._rundir import _stored_config, _stored_grammar
from deepphoenix.errors import DeepPhoenixError, RunDirError
from deepphoenix.mutator import Bundle, Program, parse_candidate, split_bundle
from deepphoenix.store import RunStore, VariantRow

__all__ = [
    "Mismatch",
    "render_files",
    "render_mismatches",
    "render_source",
    "stored_paths",
    "stored_seed",
]


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A stored variant whose source or hash is not what its seed and values render
    (`kind` "source"), or whose score the database's own records contradict ("score",
    `engine._rescore.score_mismatches`)."""

    hash: str
    reason: str
    kind: str = "source"


def stored_seed(store: RunStore) -> Program | Bundle:
    """The run's seed, parsed with its stored grammar (a `Bundle` for several files)."""
    config = _stored_config(store.get_meta("config"))
    seed_text = store.get_meta("seed_text")
    if not isinstance(seed_text, str):
        raise RunDirError(f"{store.path.parent}: the run holds no seed text (it was stopped "
                          "before its seed was stored)")
    grammar = _stored_grammar(config.grammar, seed_text, store.get_meta("grammar_toml"))
    return parse_candidate(seed_text, grammar, "seed")


def stored_paths(store: RunStore) -> tuple[str, ...]:
    """The candidate's files by their paths in the run's project (empty: no project)."""
    found = store.get_meta("project")
    return tuple(str(p) for p in found.get("paths", ())) if isinstance(found, dict) else ()


def _render(seed: Program | Bundle, row: VariantRow) -> tuple[str, str]:
    """(source, hash) that the seed and the row's recorded values render."""
    try:
        variant, _check = seed.render(row.values)
    except (DeepPhoenixError, KeyError, TypeError, ValueError) as exc:
        raise RunDirError(f"variant {row.hash}: its recorded values do not render "
                          f"({exc})") from None
    return variant.source, variant.hash


def render_source(seed: Program | Bundle, row: VariantRow) -> str:
    """The source of `row`, rendered from the seed and its recorded values; a
    `RunDirError` (run `deepphoenix lineage verify`) when they render another program."""
    source, hash_ = _render(seed, row)
    if hash_ != row.hash:
        raise RunDirError(f"variant {row.hash}: its recorded values render {hash_}, another "
                          "program; the run database was changed (see deepphoenix lineage "
                          "verify)")
    return source


def render_files(seed: Program | Bundle, row: VariantRow,
                 paths: tuple[str, ...] = ()) -> tuple[tuple[str, str], ...]:
    """Each file of `row` (path, text), rendered as `render_source` renders it: a bundle's
    files, or the one file under its project path (`paths`), else ``best.py``."""
    source = render_source(seed, row)
    return split_bundle(source) or ((paths[0] if paths else "best.py", source),)


def render_mismatches(store: RunStore) -> tuple[int, list[Mismatch]]:
    """Re-render every stored variant: (how many were checked, those whose values do not
    render their stored source). `lineage verify` adds the score checks of
    `engine._rescore.score_mismatches`."""
    seed = stored_seed(store)
    found: list[Mismatch] = []
    rows = store.variants()
    for row in rows:
        try:
            source, hash_ = _render(seed, row)
        except RunDirError as exc:
            found.append(Mismatch(row.hash, str(exc).split(": ", 1)[-1]))
            continue
        if hash_ != row.hash:
            found.append(Mismatch(row.hash, f"its values render {hash_}, another program"))
        elif source != row.source:
            found.append(Mismatch(row.hash, "its stored source differs from the one its "
                                  "values render"))
    return len(rows), found
