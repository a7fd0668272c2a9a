"""deepphoenix: AST-grounded program mutation with a learned proposer.

The public façade. Importing it never imports torch; the learned proposer, the evaluator
and the run loop import it where they need it. The Python API (`search`, `load`, `Study`)
is imported on first use, so `import deepphoenix` stays light.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from deepphoenix.errors import DeepPhoenixError
from deepphoenix.grammar import Grammar, grammar_names, load_grammar, parse_grammar
from deepphoenix.mutator import (
    Diff,
    Edit,
    Mutation,
    Program,
    Variant,
    canonical_hash,
    diff_text,
    ground,
    infer_grammar,
    parse_program,
    read_program,
)
from deepphoenix.outcome import Outcome

if TYPE_CHECKING:
    from deepphoenix.study import Best, Study, Trial, load, search

__version__ = "0.1.0"

# The Python API, loaded on first use: it pulls in the run loop, the lineage and pandas.
_LAZY = {"load", "Study", "Best", "Trial"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import deepphoenix.study as study

        return getattr(study, name)
    raise AttributeError(f"module 'deepphoenix' has no attribute {name!r}")


class _Search:
    """`deepphoenix.search(...)` runs a search (`deepphoenix.study.search`); its attributes
    are the `deepphoenix.search` subpackage's (``deepphoenix.search.RunConfig``), so the API
    function and the subpackage of the same name both stay reachable."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from deepphoenix.study import search

        return search(*args, **kwargs)

    @property
    def __wrapped__(self) -> Any:  # inspect.signature and help() show the function's
        from deepphoenix.study import search

        return search

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]
        return self.__wrapped__.__doc__

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module("deepphoenix.search"), name)

    def __repr__(self) -> str:
        return "<function deepphoenix.search>"


class _Package(types.ModuleType):
    """Importing the `deepphoenix.search` subpackage binds it on this module; the property
    keeps `deepphoenix.search` the callable above all the same."""

    @property
    def search(self) -> Any:
        return _SEARCH

    @search.setter
    def search(self, module: types.ModuleType) -> None:
        pass  # the subpackage stays in sys.modules; _Search reaches it there


_SEARCH = _Search()
sys.modules[__name__].__class__ = _Package

__all__ = [
    "Best",
    "DeepPhoenixError",
    "Diff",
    "Edit",
    "Grammar",
    "Mutation",
    "Outcome",
    "Program",
    "Study",
    "Trial",
    "Variant",
    "__version__",
    "canonical_hash",
    "diff_text",
    "grammar_names",
    "ground",
    "infer_grammar",
    "load",
    "load_grammar",
    "parse_grammar",
    "parse_program",
    "read_program",
    "search",
]
