"""Whether a run is running, finished, or stopped without finishing.

The run database says ``running`` from the start until the run finishes, so a run that
was interrupted or crashed still says it. A running deepphoenix holds the run
directory's lock (`deepphoenix.run_lock`; the OS drops it when the process dies), so a run
whose database says ``running`` but whose lock nobody holds was interrupted.
"""

from __future__ import annotations

from pathlib import Path

from deepphoenix.run_lock import lock_held

__all__ = ["lock_held", "run_state"]


def run_state(run_dir: Path, stored_status: str | None) -> str:
    """``finished``, ``running`` or ``interrupted`` (or the stored status when it is
    another word)."""
    if stored_status in (None, "running"):
        return "running" if lock_held(run_dir) else "interrupted"
    return str(stored_status)
