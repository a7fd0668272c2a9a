"""Write docs/api.md, the Python API's reference, from the docstrings and signatures.

    python docs/make_api.py          # rewrite docs/api.md
    python docs/make_api.py --check  # exit 1 if docs/api.md is out of date (the tests do)
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "api.md"

HEADER = """# Python API reference

Generated from the docstrings by `python docs/make_api.py`; do not edit by hand (a test
checks that this file is current). The walk-through is `examples/quickstart.ipynb` and the
README's "From Python".

"""


def _doc(obj: Any) -> str:
    return inspect.getdoc(obj) or ""


def _signature(name: str, obj: Any) -> str:
    try:
        return f"{name}{inspect.signature(obj)}"
    except (TypeError, ValueError):
        return name


def _function(name: str, obj: Any, level: str = "##") -> str:
    return f"{level} `{_signature(name, obj)}`\n\n{_doc(obj)}\n\n"


def _class(name: str, cls: type, level: str = "##") -> str:
    text = f"{level} `{name}`\n\n{_doc(cls)}\n\n"
    if dataclasses.is_dataclass(cls):
        rows = [f"- `{f.name}`" for f in dataclasses.fields(cls)]
        text += "Fields:\n\n" + "\n".join(rows) + "\n\n"
    for member, value in cls.__dict__.items():
        if member.startswith("_"):
            continue
        if isinstance(value, property):
            text += f"### `{name}.{member}` (property)\n\n{_doc(value)}\n\n"
        elif inspect.isfunction(value):
            text += _function(f"{name}.{member}", value, "###")
    return text


def _settings() -> str:
    # Not a table of RunConfig's fields: those change with every feature, and this file
    # would go stale with them.
    return ("## Settings\n\nAny `RunConfig` field is a keyword of `search`, over the "
            "preset's value (`preset=` picks one: smoke, cpu, gpt-cpu, paper); each field's "
            "meaning and typical value is commented in `deepphoenix/engine/_config.py`. "
            "An unknown keyword is a `ConfigError` that suggests the closest field.\n\n")


def render() -> str:
    from deepphoenix.objectives import Direction, callable_objective
    from deepphoenix.study import Best, Study, Trial, budget_shape, load, search

    parts = [HEADER, _function("deepphoenix.search", search),
             _function("deepphoenix.load", load),
             _class("Study", Study), _class("Best", Best), _class("Trial", Trial),
             _function("deepphoenix.study.budget_shape", budget_shape),
             _function("deepphoenix.objectives.callable_objective", callable_objective),
             _doc_of_module("deepphoenix.objectives._callable", "What can be shipped"),
             _class("Direction", Direction), _settings()]
    return "".join(parts).rstrip() + "\n"


def _doc_of_module(module: str, title: str) -> str:
    import importlib

    return f"## {title}\n\n{_doc(importlib.import_module(module))}\n\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is out of date: run python docs/make_api.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
