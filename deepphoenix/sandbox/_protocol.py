"""Framing between the parent and a worker: 4-byte big-endian length, then the body.

Parent to worker (the job channel), the body is UTF-8 JSON. Worker to parent (the result
channel), the body is a 32-byte HMAC-SHA256 tag and then UTF-8 JSON; the tag's key is the
session key (for ``ready``) or the key of the job the message is about, fresh for every
job and known only to the parent and the worker's trusted loop. A message whose tag does not
check is forged or torn: the parent records a failure and retires the worker.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import select
import struct
import time
import traceback
from typing import IO, Any

__all__ = [
    "MAC_SIZE",
    "MAX_MESSAGE",
    "FrameReader",
    "ProtocolError",
    "decode_signed",
    "encode_signed",
    "encode_unsigned",
    "failure_kind",
    "failure_text",
    "is_out_of_memory",
    "is_out_of_space",
    "read_message",
    "write_all",
    "write_message",
]

MAX_MESSAGE = 256 * 2**20
MAC_SIZE = 32
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


def _tag(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()


def encode_unsigned(message: dict[str, Any]) -> bytes:
    """One framed message from a job's own process to its worker's loop (a pipe only the
    two share; the loop checks it and signs what it forwards)."""
    body = json.dumps(message, separators=(",", ":"), allow_nan=True).encode("utf-8")
    if len(body) > MAX_MESSAGE:
        raise ProtocolError(f"message of {len(body)} bytes is over the {MAX_MESSAGE} limit")
    return _HEADER.pack(len(body)) + body


def encode_signed(key: bytes, message: dict[str, Any]) -> bytes:
    """One framed, authenticated message from a worker."""
    body = json.dumps(message, separators=(",", ":"), allow_nan=True).encode("utf-8")
    if len(body) + MAC_SIZE > MAX_MESSAGE:
        raise ProtocolError(f"message of {len(body)} bytes is over the {MAX_MESSAGE} limit")
    return _HEADER.pack(MAC_SIZE + len(body)) + _tag(key, body) + body


def decode_signed(key: bytes, frame: bytes) -> dict[str, Any]:
    """The message in `frame` if its tag checks under `key`; `ProtocolError` otherwise."""
    if len(frame) < MAC_SIZE:
        raise ProtocolError("a message shorter than its authentication tag")
    tag, body = frame[:MAC_SIZE], frame[MAC_SIZE:]
    if not hmac.compare_digest(tag, _tag(key, body)):
        raise ProtocolError("a message whose authentication tag does not check")
    try:
        message = json.loads(body.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError and JSONDecodeError both are
        raise ProtocolError("an authenticated message that is not JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError("an authenticated message that is not a JSON object")
    return message


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to a blocking file descriptor."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class FrameReader:
    """Frames from a file descriptor, with a deadline that also bounds a frame that stops
    half way (the other side may be hostile: a torn frame must not hang the parent)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = bytearray()

    def pending(self) -> bool:
        """Bytes are buffered or can be read now (between jobs, nothing should be)."""
        if self._buffer:
            return True
        try:
            ready, _, _ = select.select([self.fd], [], [], 0)
        except (OSError, ValueError):
            return False
        return bool(ready)

    def _frame(self) -> bytes | None:
        if len(self._buffer) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(self._buffer)
        if size > MAX_MESSAGE:
            raise ProtocolError(f"message of {size} bytes is over the {MAX_MESSAGE} limit")
        end = _HEADER.size + size
        if len(self._buffer) < end:
            return None
        frame = bytes(self._buffer[_HEADER.size:end])
        del self._buffer[:end]
        return frame

    def read(self, deadline: float | None, exited: int | None = None) -> bytes | None:
        """The next frame's body; None at end of stream (a torn last frame included), or
        once the descriptor `exited` (a pidfd of the writer) is readable and nothing more
        is; `TimeoutError` past `deadline` (a `time.monotonic()` value); `ProtocolError`
        for a frame over `MAX_MESSAGE`. The pidfd matters because the pipe's write end
        may live on in processes the writer forked."""
        watch = [self.fd] if exited is None else [self.fd, exited]
        while True:
            frame = self._frame()
            if frame is not None:
                return frame
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select(watch, [], [], wait)
            if not ready:
                raise TimeoutError
            if self.fd not in ready:  # the writer is gone: take what it left, then stop
                ready, _, _ = select.select([self.fd], [], [], 0)
                if not ready:
                    return None
            chunk = os.read(self.fd, 2**20)
            if not chunk:
                return None
            self._buffer += chunk


def is_out_of_memory(exc: BaseException) -> bool:
    """Python's, the address-space limit's and torch's (CPU or CUDA) ways of saying it."""
    text = str(exc)
    return (isinstance(exc, MemoryError) or "out of memory" in text.lower()
            or "can't allocate memory" in text)


def is_out_of_space(exc: BaseException) -> bool:
    """A full scratch space or workspace (ENOSPC, EDQUOT) or a file past the worker's
    file-size limit (EFBIG)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def failure_kind(exc: BaseException) -> str:
    """How a job's exception is reported: "memory", "disk" or "exception"."""
    if is_out_of_memory(exc):
        return "memory"
    return "disk" if is_out_of_space(exc) else "exception"


def failure_text(exc: BaseException) -> tuple[str, str]:
    """A failure as reported over the wire: the message and the traceback's tail, both
    bounded so a report never approaches `MAX_MESSAGE`."""
    return f"{type(exc).__name__}: {exc}"[:2000], traceback.format_exc()[-8000:]
