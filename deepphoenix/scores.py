"""How a score, and text a candidate may have written, are printed: the CLI, the lineage
views and the report use one format."""

from __future__ import annotations

import math

__all__ = ["format_score", "printable"]

# Characters a terminal acts on instead of showing (C0 and C1 controls, DEL: escape
# sequences set a title, clear the screen, move the cursor) and those that reorder or hide
# text (bidirectional overrides, line and paragraph separators), shown as escapes.
_HIDDEN = [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x200E, 0x200F, *range(0x202A, 0x202F),
           *range(0x2066, 0x206A), 0x2028, 0x2029]
_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
_ESCAPES = {c: _NAMED.get(c, f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _HIDDEN}
_MULTILINE = {c: e for c, e in _ESCAPES.items() if c not in (0x09, 0x0A)}


def printable(text: str, multiline: bool = False) -> str:
    """`text` with every control character shown as its escape (``\\x1b``, ``\\u202e``),
    so that a candidate's text (an exception it raised, a value it holds) cannot act on
    the terminal it is printed to; `multiline` keeps newlines and tabs."""
    return str(text).translate(_MULTILINE if multiline else _ESCAPES)


def format_score(value: float, digits: int = 4) -> str:
    """`digits` decimals in the usual range (0.0123, 2.5000), scientific notation outside
    it (1e+308, 1.5e-07), so that no score prints as hundreds of digits."""
    if not math.isfinite(value):
        return str(value)
    if value == 0 or 1e-3 <= abs(value) < 1e6:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}g}"
