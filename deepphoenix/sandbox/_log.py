"""The worker log: everything a worker and the programs it starts write to stdout or stderr,
drained from a pipe by a thread of the parent into a file that never grows past a cap.

Past the cap the drain keeps reading (a writer never blocks on a full pipe) but keeps only
the last `TAIL_BYTES`, which it appends after a truncation note when the worker's output
ends; so the file holds the beginning and the end of what was written, never more than the
cap in all, and the reason a worker died is still at its end. A worker started on a log that
is already over half its cap first moves it to ``<name>.1`` (replacing an older one): at
most two files of at most the cap each per log path.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
from pathlib import Path

__all__ = ["DEFAULT_LOG_CAP", "TAIL_BYTES", "LogDrain"]

DEFAULT_LOG_CAP = 16 * 2**20  # bytes per worker log file
TAIL_BYTES = 64 * 2**10
_NOTE_ROOM = 256


class LogDrain:
    """Copies `fd` (the read end of a worker's output pipe, owned from now on) to `path`,
    appending, until end of stream; the file stays under `cap` bytes (writes of earlier
    workers to the same file count)."""

    def __init__(self, fd: int, path: Path, cap: int = DEFAULT_LOG_CAP) -> None:
        self._fd = fd
        self._path = path
        self._cap = max(cap, 2 * (TAIL_BYTES + _NOTE_ROOM))
        self._tail: collections.deque[bytes] = collections.deque()
        self._tail_size = 0
        self.discarded = 0
        with contextlib.suppress(OSError):
            if path.stat().st_size > self._cap // 2:
                path.replace(path.with_name(path.name + ".1"))
        self._thread = threading.Thread(target=self._run, name="deepphoenix-log",
                                        daemon=True)
        self._thread.start()

    def _keep_tail(self, chunk: bytes) -> None:
        self._tail.append(chunk)
        self._tail_size += len(chunk)
        while self._tail_size - len(self._tail[0]) >= TAIL_BYTES:
            self._tail_size -= len(self._tail.popleft())

    def _run(self) -> None:
        with open(self._path, "ab") as log:
            head_room = self._cap - TAIL_BYTES - 2 * _NOTE_ROOM - log.tell()
            while True:
                try:
                    chunk = os.read(self._fd, 2**16)
                except OSError:
                    break
                if not chunk:
                    break
                if head_room > 0:
                    kept = chunk[:head_room]
                    log.write(kept)
                    log.flush()
                    head_room -= len(kept)
                    chunk = chunk[len(kept):]
                    if not chunk:
                        continue
                    log.write(b"\n[deepphoenix: worker log over its cap of "
                              + str(self._cap).encode() + b" bytes; the rest is dropped "
                              b"but its last bytes are kept at the end]\n")
                    log.flush()
                self.discarded += len(chunk)
                self._keep_tail(chunk)
            if self.discarded:
                tail = b"".join(self._tail)[-TAIL_BYTES:]
                dropped = self.discarded - len(tail)
                log.write(b"\n[deepphoenix: " + str(dropped).encode()
                          + b" bytes of worker output dropped; its last "
                          + str(len(tail)).encode() + b" bytes follow]\n" + tail)
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def join(self, timeout: float) -> None:
        """Wait for end of stream (every writer gone) and the tail written."""
        self._thread.join(timeout)
