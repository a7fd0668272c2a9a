"""Whether a run is running, finished, or stopped without finishing.

The run database says ``running`` from the start until the run finishes, so a run that
was interrupted or crashed still says it. A running deepphoenix holds an exclusive
``flock`` on ``RUN_DIR/.lock`` (the OS drops it when the process dies), so a run whose
database says ``running`` but whose lock nobody holds was interrupted.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

__all__ = ["LOCK_NAME", "lock_held", "run_state"]

LOCK_NAME = ".lock"


def lock_held(run_dir: Path) -> bool:
    """Whether some process (this one included, through another handle) holds the run
    directory's lock. Creates nothing."""
    try:
        handle = open(Path(run_dir) / LOCK_NAME)  # noqa: SIM115 - closed below
    except OSError:
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        handle.close()  # closing drops a lock we took
    return False


def run_state(run_dir: Path, stored_status: str | None) -> str:
    """``finished``, ``running`` or ``interrupted`` (or the stored status when it is
    another word)."""
    if stored_status in (None, "running"):
        return "running" if lock_held(run_dir) else "interrupted"
    return str(stored_status)
