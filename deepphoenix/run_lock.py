"""`RunLock`: one process at a time in a run directory.

The lock is an exclusive ``flock`` on the run directory itself (its open descriptor), not
on a file inside it, so it cannot be bypassed by deleting a file; the OS drops it when
the holding process dies, so a ``kill -9`` never leaves a stale lock. ``RUN_DIR/.lock``
only tells a second process who holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from deepphoenix.errors import RunDirError

__all__ = ["INFO_NAME", "RunLock", "lock_held"]

INFO_NAME = ".lock"  # "pid N" of the holder, for messages only


def _open_dir(run_dir: Path) -> int:
    return os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)


class RunLock:
    """An exclusive lock on a run directory for the life of a run."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    @classmethod
    def acquire(cls, run_dir: Path, create: bool) -> RunLock:
        if create:
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RunDirError(f"cannot create run directory {run_dir}: "
                                  f"{exc.strerror or exc}") from None
        elif not run_dir.is_dir():
            raise RunDirError(f"{run_dir}: no such run directory")
        try:
            fd = _open_dir(run_dir)
        except OSError as exc:
            raise RunDirError(f"cannot lock run directory {run_dir}: "
                              f"{exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            holder = "another process"
            with contextlib.suppress(OSError):
                holder = (run_dir / INFO_NAME).read_text().strip() or holder
            raise RunDirError(f"{run_dir} is in use by a running deepphoenix ({holder}); "
                              "wait for it or stop it first") from None
        with contextlib.suppress(OSError):  # informative only: a read-only dir still locks
            (run_dir / INFO_NAME).write_text(f"pid {os.getpid()}\n")
        return cls(fd)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the lock
            self.fd = None


def lock_held(run_dir: Path) -> bool:
    """Whether some process (this one included, through another descriptor) holds the run
    directory's lock. Creates nothing."""
    try:
        fd = _open_dir(Path(run_dir))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we took
    return False
