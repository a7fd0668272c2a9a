"""What an evaluation worker imports before its first job, decided by the parent from the
run's objective and seed program.

Importing torch and transformers takes a worker seconds and about 250 MiB; the built-in
objectives need them for every candidate, a user objective on a program that imports
neither (the synthetic objective of ``benchmarks/bench_async.py``: a score computed from
two constants) does not. The decision only moves a cost: a worker imports what a job
needs when the job imports it (`exec_program` imports torch and transformers for a
program that names them), so a wrong guess makes a first job slower, never wrong. Torch
is seeded with the evaluation seed before a program runs whenever it is loaded by then;
which is why the rule is conservative: any import outside the standard library, or a
dynamic one, preloads both.
"""

from __future__ import annotations

import ast
import sys

from deepphoenix.objectives import ObjectiveSpec

__all__ = ["TORCH_PRELOAD", "evaluation_preload", "standard_only"]

TORCH_PRELOAD = ("torch", "transformers")
# Names that reach torch without an import statement: the program namespace's own
# `torch` and `transformers` (the paper's snippet uses transformers without importing
# it), and the ways of importing a module named by a string.
_REACHING = frozenset({*TORCH_PRELOAD, "__import__", "importlib", "exec", "eval"})


def evaluation_preload(objective: ObjectiveSpec, source: str) -> tuple[str, ...]:
    """`TORCH_PRELOAD` unless both the program and the objective are plain Python that
    only imports the standard library (then nothing: the worker starts without torch).
    The built-in objectives, a callable shipped by value (unreadable here) and a text that
    does not parse all preload. A command objective preloads nothing: the worker runs the
    command, whose own interpreter imports what it needs."""
    if objective.command:
        return ()
    if objective.builtin or objective.pickled or not objective.text:
        return TORCH_PRELOAD
    if standard_only(source) and standard_only(objective.text):
        return ()
    return TORCH_PRELOAD


def standard_only(text: str) -> bool:
    """Whether `text` parses, imports only standard-library modules (absolutely) and names
    none of `_REACHING`."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                return False
            modules = [node.module or ""]
        elif isinstance(node, ast.Name):
            if node.id in _REACHING:
                return False
            continue
        else:
            continue
        for module in modules:
            top = module.partition(".")[0]
            if top in _REACHING or top not in sys.stdlib_module_names:
                return False
    return True
