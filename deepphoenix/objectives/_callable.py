"""A Python callable as an objective, on the parent side: checked, then pickled by value
with cloudpickle so that a function defined in a notebook or in ``__main__`` reaches the
sandboxed worker. The parent only ever writes these bytes; they are loaded in the worker.

What can be shipped: a plain function or a lambda, a closure over picklable values
(numbers, strings, lists, dicts, numpy arrays, CPU tensors), the functions and classes it
uses from the notebook or its own module (pickled with it, by value), and modules the
worker can import (pickled by name: ``torch``, ``math``). What cannot: a closure over an
open file, a lock, a socket, a database connection, a generator, a thread or a process
pool; a bound method of such an object; and anything whose pickle is over
`MAX_PICKLED_BYTES` (a large captured dataset: load it inside the function instead).
The function is snapshotted when the search starts: later edits in the notebook do not
reach a running or a resumed search.
"""

from __future__ import annotations

import base64
import inspect
import pickle
import sys
from collections.abc import Callable
from typing import Any

from deepphoenix.errors import ConfigError
from deepphoenix.objectives._spec import Direction, ObjectiveSpec

__all__ = ["MAX_PICKLED_BYTES", "callable_objective", "ship_callable"]

MAX_PICKLED_BYTES = 64 * 2**20  # a pickle this large is a captured dataset, not a function


def callable_objective(function: Any, direction: str | Direction | None = None) -> ObjectiveSpec:
    """The objective `function(program, ctx)`, shipped by value. `direction` overrides a
    ``function.direction`` attribute; minimize when neither is given. `ConfigError` for
    something that is not a function of two arguments or cannot be pickled."""
    if not callable(function) or isinstance(function, type):
        raise ConfigError(f"Expected an objective name, PATH.py:NAME or a function "
                          f"(program, ctx) -> score but got objective={function!r} "
                          f"(type={type(function).__name__})")
    declared = direction if direction is not None else getattr(function, "direction", None)
    chosen = (declared if isinstance(declared, Direction)
              else Direction.parse(str(declared)) if declared is not None
              else Direction.MINIMIZE)
    qualified, pickled = ship_callable(function, "objective")
    name = qualified.rpartition(":")[2]
    return ObjectiveSpec(qualified, chosen, function=name, origin=f"<callable {qualified}>",
                         pickled=pickled)


def ship_callable(function: Callable[..., Any], role: str) -> tuple[str, str]:
    """A function ``(program, ctx)`` pickled by value for a worker: its ``module:name``
    and its cloudpickle bytes as base64. `role` names it in every message."""
    name = getattr(function, "__qualname__", None) or type(function).__name__
    _check_signature(function, name, role)
    module = getattr(function, "__module__", None) or "__main__"
    data = _pickle(function, module, name, role)
    return f"{module}:{name}", base64.b64encode(data).decode("ascii")


def _check_signature(function: Callable[..., Any], name: str, role: str) -> None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return  # a builtin without a signature: the worker's call will tell
    try:
        signature.bind(None, None)
    except TypeError:
        raise ConfigError(f"the {role} {name}{signature} has the wrong signature; "
                          f"{_article(role)} is called as {name}(program, ctx)") from None


def _article(role: str) -> str:
    return f"{'an' if role[:1] in 'aeiou' else 'a'} {role}"


def _pickle(function: Callable[..., Any], module_name: str, name: str, role: str) -> bytes:
    """The callable's pickle. Its own module goes by value (a test module or a script the
    worker cannot import), unless that is an installed library's or deepphoenix's."""
    import cloudpickle

    module = sys.modules.get(module_name)
    by_value = (module is not None and module_name != "__main__"
                and not module_name.startswith("deepphoenix")
                and _user_module(module))
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        data: bytes = cloudpickle.dumps(function, protocol=pickle.DEFAULT_PROTOCOL)
    except Exception as exc:  # cloudpickle raises TypeError, PicklingError, AttributeError
        raise ConfigError(
            f"the {role} {name} cannot be shipped to the sandboxed worker: {exc}. "
            f"{_article(role).capitalize()} is pickled by value; it may use numbers, strings, "
            "containers, arrays and importable modules, not open files, locks, connections "
            "or generators: create those inside the function") from None
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)
    if len(data) > MAX_PICKLED_BYTES:
        raise ConfigError(f"the {role} {name} pickles to {len(data) / 2**20:.0f} MB (over "
                          f"{MAX_PICKLED_BYTES // 2**20} MB): it captures large data; load "
                          "the data inside the function instead")
    return data


def _user_module(module: Any) -> bool:
    """Whether `module` is the user's own code: a file outside the standard library and
    site-packages (those the worker imports by name)."""
    path = getattr(module, "__file__", None)
    if not path:
        return False
    return not any(part in path for part in ("site-packages", "dist-packages")) and not (
        path.startswith(sys.base_prefix) or path.startswith(sys.prefix))
