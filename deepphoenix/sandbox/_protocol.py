"""Framing between the parent and a worker: 4-byte big-endian length, then UTF-8 JSON."""

from __future__ import annotations

import json
import struct
import traceback
from typing import IO, Any

__all__ = [
    "MAX_MESSAGE",
    "ProtocolError",
    "failure_text",
    "is_out_of_memory",
    "read_message",
    "write_message",
]

MAX_MESSAGE = 256 * 2**20
_HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """The other side sent something that is not a message."""


def write_message(stream: IO[bytes], message: dict[str, Any]) -> None:
    data = json.dumps(message, separators=(",", ":"), allow_nan=True).encode("utf-8")
    if len(data) > MAX_MESSAGE:
        raise ProtocolError(f"message of {len(data)} bytes is over the {MAX_MESSAGE} limit")
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    chunks = []
    remaining = size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_message(stream: IO[bytes]) -> dict[str, Any] | None:
    """The next message, or None at end of stream."""
    header = _read_exactly(stream, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_MESSAGE:
        raise ProtocolError(f"message of {size} bytes is over the {MAX_MESSAGE} limit")
    body = _read_exactly(stream, size)
    if body is None:
        return None
    message = json.loads(body.decode("utf-8"))
    if not isinstance(message, dict):
        raise ProtocolError("a message must be a JSON object")
    return message


def is_out_of_memory(exc: BaseException) -> bool:
    """Python's, the address-space limit's and torch's (CPU or CUDA) ways of saying it."""
    text = str(exc)
    return (isinstance(exc, MemoryError) or "out of memory" in text.lower()
            or "can't allocate memory" in text)


def failure_text(exc: BaseException) -> tuple[str, str]:
    """A failure as reported over the wire: the message and the traceback's tail, both
    bounded so a report never approaches `MAX_MESSAGE`."""
    return f"{type(exc).__name__}: {exc}"[:2000], traceback.format_exc()[-8000:]
