"""`Registry`: the one mechanism behind the extension points (grammars, proposers,
executors, search strategies): built-ins registered in code, third parties found under an
entry-point group, and an unknown name answered with the close matches."""

from __future__ import annotations

from importlib import metadata
from typing import Generic, TypeVar

from deepphoenix.errors import UnknownNameError

__all__ = ["Registry"]

T = TypeVar("T")

class Registry(Generic[T]):
    """Named factories of one kind (`what`, as error messages say it)."""

    def __init__(self, what: str, group: str) -> None:
        self.what = what
        self.group = group  # the entry-point group third parties register under
        self._builtin: dict[str, T] = {}

    def register(self, name: str, item: T) -> None:
        self._builtin[name] = item

    def unregister(self, name: str) -> None:
        """Forget a name registered in code (a plugin's tests, a toy one); no error if
        it is not there."""
        self._builtin.pop(name, None)

    def _entry_points(self) -> dict[str, metadata.EntryPoint]:
        return {ep.name: ep for ep in metadata.entry_points(group=self.group)}

    def names(self) -> list[str]:
        return sorted(set(self._builtin) | set(self._entry_points()))

    def builtin_names(self) -> list[str]:
        """The names registered in code (not through entry points)."""
        return sorted(self._builtin)

    def get(self, name: str) -> T:
        """The item registered as `name` (an entry point is loaded on first use);
        `UnknownNameError` listing the known names otherwise."""
        found = self._builtin.get(name)
        if found is not None:
            return found
        entry = self._entry_points().get(name)
        if entry is None:
            raise UnknownNameError(self.what, name, self.names())
        loaded: T = entry.load()
        return loaded
