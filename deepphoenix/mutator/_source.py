"""Reading and parsing source text, with one clear error for every way it can be wrong."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import libcst as cst

from deepphoenix.errors import ParseError, SourceError

__all__ = ["parse_module", "read_source"]

_NATIVE_POSITION = re.compile(r"error at (\d+):(\d+): (.*)")


def read_source(path: str | Path) -> str:
    """Read a Python source file as text, or raise `SourceError` saying why it cannot be."""
    p = Path(path)
    if not p.exists():
        raise SourceError(f"{p}: no such file")
    if p.is_dir():
        raise SourceError(f"{p}: is a directory, expected a Python source file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise SourceError(f"{p}: cannot be read: {exc.strerror}") from None
    if b"\x00" in data:
        raise SourceError(f"{p}: is a binary file, expected Python source text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{p}: is not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x})"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise SourceError(f"{p}: is empty, expected Python source")
    return text


def parse_module(text: str, path: str | None = None) -> cst.Module:
    """Parse text into a libcst `Module`; `ParseError` carries file, line and column.

    The message and position come from Python's own parser where it also rejects the
    text (its messages are the ones people know), else from libcst's.
    """
    try:
        return cst.parse_module(text)
    except cst.ParserSyntaxError as exc:
        native = str(exc.message)
        failure = exc
    except (RecursionError, MemoryError):
        raise ParseError("too deeply nested to parse", path=path, line=1, column=1) from None
    try:
        ast.parse(text)
    except SyntaxError as syntax:
        raise ParseError(
            syntax.msg, path=path, line=syntax.lineno or 1, column=syntax.offset or 1
        ) from None
    except (RecursionError, MemoryError, ValueError):
        pass
    where = _NATIVE_POSITION.search(native)
    if where:
        line, column = int(where.group(1)), int(where.group(2)) + 1
        message = where.group(3)
    else:
        line, column, message = failure.raw_line, failure.raw_column + 1, native
    if len(message) > 100:
        message = message[:99] + "…"
    raise ParseError(message, path=path, line=line, column=column) from None
