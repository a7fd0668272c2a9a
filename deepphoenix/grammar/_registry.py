"""Named grammars: the built-ins shipped as TOML, and third parties' through entry points.

A third-party package registers ``[project.entry-points."deepphoenix.grammars"]`` with
``name = "pkg.module:obj"`` where `obj` is a `Grammar`, a callable returning one, or a path
to a TOML file.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Any

from deepphoenix.errors import GrammarError, UnknownNameError
from deepphoenix.grammar._grammar import Grammar
from deepphoenix.grammar._toml import parse_grammar, read_grammar_file
from deepphoenix.registry import Registry

__all__ = ["ENTRY_POINT_GROUP", "grammar_file", "grammar_names", "load_grammar"]

ENTRY_POINT_GROUP = "deepphoenix.grammars"


def _builtin_files() -> list[str]:
    folder = resources.files("deepphoenix.grammar") / "builtin"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


@functools.lru_cache(maxsize=32)
def _load_builtin(name: str) -> Grammar:
    text = (resources.files("deepphoenix.grammar") / "builtin" / f"{name}.toml").read_text(
        encoding="utf-8"
    )
    return parse_grammar(text, origin=f"builtin:{name}", default_name=name)


# The built-ins (one TOML file each) register here as loaders; third parties under the
# entry-point group, as a Grammar, a callable returning one, or a TOML path.
GRAMMARS: Registry[Any] = Registry("grammar", ENTRY_POINT_GROUP)
for _name in _builtin_files():
    GRAMMARS.register(_name, functools.partial(_load_builtin, _name))


def grammar_names() -> list[str]:
    """Every registered grammar name, built-ins first."""
    builtins = GRAMMARS.builtin_names()
    return builtins + sorted(n for n in GRAMMARS.names() if n not in builtins)


def load_grammar(spec: str | Path) -> Grammar:
    """Load a grammar by registered name or from a TOML file path.

    Raises `UnknownNameError` (with close matches) for an unknown name that is not a file,
    and `GrammarError` for an invalid definition.
    """
    text = str(spec)
    if isinstance(spec, str) and text in GRAMMARS.names():
        obj = GRAMMARS.get(text)
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
    if spec in GRAMMARS.names():
        return None
    path = Path(spec)
    return path if path.suffix == ".toml" or path.exists() or "/" in spec else None
