"""Where in a grammar's TOML text a key is, for error messages that name its line."""

from __future__ import annotations

import re
from typing import NoReturn

from deepphoenix.errors import GrammarError

__all__ = ["TomlContext"]


class TomlContext:
    """The text being read; `fail` raises a `GrammarError` naming the key and its line."""

    def __init__(self, text: str, origin: str) -> None:
        self.lines = text.splitlines()
        self.origin = origin

    def fail(self, keys: tuple[str, ...], message: str) -> NoReturn:
        line = self._locate(keys)
        where = f"{self.origin}:{line}" if line else self.origin
        dotted = ".".join(keys)
        raise GrammarError(f"{where}: key {dotted!r}: {message}")

    def _locate(self, keys: tuple[str, ...]) -> int | None:
        """Best-effort line of a key: the key inside its table, else the table header."""
        table: tuple[str, ...] = ()
        header_line: int | None = None
        parent_line: int | None = None  # a missing key: its table's header
        want_table, want_key = keys[:-1], keys[-1]
        for number, raw in enumerate(self.lines, start=1):
            line = raw.strip()
            header = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?", line)
            if header:
                table = tuple(p.strip().strip("\"'") for p in header.group(1).split("."))
                if table == keys:
                    header_line = number
                if table == want_table and parent_line is None:
                    parent_line = number
                continue
            key = re.match(r"^([A-Za-z0-9_\"'.-]+)\s*=", line)
            if key and table == want_table and key.group(1).strip("\"'") == want_key:
                return number
        return header_line or parent_line
