"""Named grammars: the built-ins shipped as TOML, and third parties' through entry points.

A third-party package registers ``[project.entry-points."deepphoenix.grammars"]`` with
``name = "pkg.module:obj"`` where `obj` is a `Grammar`, a callable returning one, or a path
to a TOML file.
"""

from __future__ import annotations

import functools
from importlib import metadata, resources
from pathlib import Path

from deepphoenix.errors import GrammarError, UnknownNameError
from deepphoenix.grammar._grammar import Grammar
from deepphoenix.grammar._toml import parse_grammar, read_grammar_file

__all__ = ["ENTRY_POINT_GROUP", "grammar_file", "grammar_names", "load_grammar"]

ENTRY_POINT_GROUP = "deepphoenix.grammars"


def _builtin_names() -> list[str]:
    folder = resources.files("deepphoenix.grammar") / "builtin"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def grammar_names() -> list[str]:
    """Every registered grammar name, built-ins first."""
    builtins = _builtin_names()
    return builtins + sorted(n for n in _entry_points() if n not in builtins)


@functools.lru_cache(maxsize=32)
def _load_builtin(name: str) -> Grammar:
    text = (resources.files("deepphoenix.grammar") / "builtin" / f"{name}.toml").read_text(
        encoding="utf-8"
    )
    return parse_grammar(text, origin=f"builtin:{name}", default_name=name)


def load_grammar(spec: str | Path) -> Grammar:
    """Load a grammar by registered name or from a TOML file path.

    Raises `UnknownNameError` (with close matches) for an unknown name that is not a file,
    and `GrammarError` for an invalid definition.
    """
    text = str(spec)
    if isinstance(spec, str) and text in _builtin_names():
        return _load_builtin(text)
    if isinstance(spec, str) and text in (eps := _entry_points()):
        obj = eps[text].load()
        if callable(obj) and not isinstance(obj, Grammar):
            obj = obj()
        if isinstance(obj, Grammar):
            return obj
        if isinstance(obj, str | Path):
            return read_grammar_file(obj)
        raise GrammarError(
            f"entry point {text!r} in {ENTRY_POINT_GROUP!r} gave {type(obj).__name__}, "
            "expected a Grammar, a callable returning one, or a TOML path"
        )
    path = grammar_file(text)
    if path is not None:
        return read_grammar_file(path)
    raise UnknownNameError("grammar", text, [*grammar_names(), "infer"])


def grammar_file(spec: str) -> Path | None:
    """The TOML file a grammar spec names, or None when it names a registered grammar
    (or nothing)."""
    if spec in _builtin_names() or spec in _entry_points():
        return None
    path = Path(spec)
    return path if path.suffix == ".toml" or path.exists() or "/" in spec else None
