"""What a confined candidate reports as its process ids are ids in its worker's PID
namespace; the tests look for survivors on the host, so they translate them while the
processes live."""

from __future__ import annotations

from collections.abc import Iterable

from deepphoenix.sandbox import Worker
from deepphoenix.sandbox._reaper import descendants


def _inner_pid(pid: int) -> int | None:
    """`pid`'s id in the innermost PID namespace it belongs to (NSpid's last field)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        return None
    return None


def host_pids(worker: Worker, pids: Iterable[int]) -> list[int]:
    """The host's ids of processes a job reported by their ids in its worker (the same ids
    when the worker has no PID namespace; -1 for one that is already gone)."""
    pids = list(pids)
    if not str(worker.isolation.get("processes", "")).startswith("PID namespace"):
        return pids
    assert worker.pid is not None
    inside = {_inner_pid(p): p for p in descendants(worker.pid)}
    return [inside.get(p, -1) for p in pids]
