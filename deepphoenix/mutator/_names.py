"""The names a module-level definition site's alternatives need: each one bound by the
alternative, by the rest of the file, or a builtin (read with `ast` and `symtable`, which
execute nothing)."""

from __future__ import annotations

import ast
import builtins
import symtable

from deepphoenix.errors import SiteError
from deepphoenix.grammar import SiteSpec
from deepphoenix.mutator._scan import Source

__all__ = ["check_names"]

_BUILTINS = frozenset(dir(builtins)) | {"__name__", "__file__", "__doc__", "__spec__",
                                        "__package__", "__builtins__", "__loader__"}


def check_names(source: Source, spec: SiteSpec, start: int, end: int) -> None:
    """Every module-level name an alternative of a module-level definition site uses is
    bound by the alternative itself, by the rest of the file (outside the site's span
    `start`..`end`), or is a builtin; `SiteError` naming the first that is not."""
    try:
        tree = ast.parse(source.text)
    except SyntaxError:
        return
    bound: set[str] = set()
    for node in tree.body:
        if start <= source.line_start(node.lineno) < end:
            continue  # inside the site's span: the alternative in place now
        names = _bound_by(node)
        if names is None:
            return  # a star import: anything may be bound
        bound |= names
    assert spec.structure is not None
    for alternative in spec.structure.alternatives:
        for name in sorted(_needs(alternative.code)):
            if name not in bound and name not in _BUILTINS:
                raise SiteError(
                    f"site {spec.name!r}: alternative {alternative.name!r} uses {name!r}, "
                    f"which neither the alternative nor {source.where} defines or imports "
                    "(add the helper to the alternative's code, or import it in the file)")


def _bound_by(node: ast.stmt) -> set[str] | None:
    names: set[str] = set()
    if isinstance(node, ast.Import | ast.ImportFrom):
        for alias in node.names:
            if alias.name == "*":
                return None
            names.add(alias.asname or alias.name.split(".")[0])
        return names
    if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        return {node.name}
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
            names.add(sub.id)
        elif isinstance(sub, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(sub.name)
        elif isinstance(sub, ast.Import | ast.ImportFrom):
            names.update(a.asname or a.name.split(".")[0] for a in sub.names)
    return names


def _needs(code: str) -> set[str]:
    """The global names `code` reads and does not bind itself."""
    table = symtable.symtable(code + "\n", "<alternative>", "exec")
    local = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()
             or s.is_namespace()}
    needs: set[str] = set()
    stack = [table]
    while stack:
        current = stack.pop()
        for symbol in current.get_symbols():
            if not symbol.is_referenced():
                continue
            is_module = current is table
            if (is_module and symbol.get_name() not in local) or (
                    not is_module and symbol.is_global() and not symbol.is_declared_global()):
                needs.add(symbol.get_name())
        stack.extend(current.get_children())
    return needs - local
