"""Finding and killing the processes a candidate started, wherever they went.

A process that forks, calls ``setsid`` and ignores SIGTERM leaves any process group kill
behind. Two things keep it reachable: every worker and its supervisor is a *child
subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``), so an orphan is re-parented to the worker,
or to the supervisor once the worker is gone, instead of to init; and `kill_tree` walks
``/proc`` for every process whose parent chain leads to a root, stops them all with SIGSTOP
(a stopped process cannot fork any more, so the tree stops growing), re-walks until no new
process shows up, then SIGKILLs them and reaps those that became our children. Linux only.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Iterable

__all__ = ["become_subreaper", "descendants", "kill_tree", "process_table",
           "reap", "running"]

_PR_SET_CHILD_SUBREAPER = 36
_MAX_ROUNDS = 64  # stop/re-walk rounds; a fork bomb is stopped long before this


def become_subreaper() -> bool:
    """Make orphans of our descendants our children; False where the kernel says no."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, session id, state) of `pid`, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name is in parentheses and may contain anything, parentheses included.
    fields = text.rsplit(")", 1)[-1].split()
    try:
        return int(fields[1]), int(fields[3]), fields[0]
    except (IndexError, ValueError):
        return None


def running(pid: int) -> bool:
    """Whether `pid` is alive and not a zombie waiting for a reaper."""
    info = _stat(pid)
    return info is not None and info[2] not in ("Z", "X")


def process_table() -> dict[int, tuple[int, int, str]]:
    """Every visible process: pid -> (parent pid, session id, state)."""
    table = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return {}
    for name in names:
        if name.isdigit():
            info = _stat(int(name))
            if info is not None:
                table[int(name)] = info
    return table


def descendants(root: int, table: dict[int, tuple[int, int, str]] | None = None) -> set[int]:
    """Every live process whose parent chain leads to `root` (not `root` itself)."""
    table = process_table() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (ppid, _sid, _state) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found and child != root:
                found.add(child)
                stack.append(child)
    return {pid for pid in found if table[pid][2] not in ("Z", "X")}


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def reap(pids: Iterable[int], timeout: float = 2.0) -> None:
    """Wait up to `timeout` seconds for `pids` (killed) to be gone, collecting the exit
    status of those that are, or become, our children: a killed process whose parent is
    killed too is re-parented to the subreaper, and a zombie left unreaped lives on."""
    me = os.getpid()
    pending = set(pids)
    deadline = time.monotonic() + timeout
    while pending:
        for pid in list(pending):
            info = _stat(pid)
            if info is None:
                pending.discard(pid)
            elif info[0] == me and info[2] in ("Z", "X"):
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, os.WNOHANG)
        if not pending or time.monotonic() > deadline:
            return
        time.sleep(0.005)


def kill_tree(roots: Iterable[int], include_roots: bool = True,
              keep_unreaped: Iterable[int] = ()) -> int:
    """SIGKILL every descendant of `roots` (and the roots when `include_roots`); return how
    many processes were signalled. Stops the whole tree first so that nothing forks away
    between the walk and the kill. Killed processes that are our children are reaped,
    except `keep_unreaped` (a `subprocess.Popen` that will wait for its own)."""
    roots = set(roots)
    stopped: set[int] = set()
    if include_roots:
        for pid in roots:
            _signal(pid, signal.SIGSTOP)
        stopped |= roots
    for _ in range(_MAX_ROUNDS):
        table = process_table()
        found: set[int] = set()
        for root in roots | stopped:
            found |= descendants(root, table)
        new = found - stopped - ({os.getpid()})
        if not new:
            break
        for pid in new:
            _signal(pid, signal.SIGSTOP)
        stopped |= new
    for pid in stopped:
        _signal(pid, signal.SIGKILL)
        _signal(pid, signal.SIGCONT)  # a stopped process dies of SIGKILL, but be sure
    reap(stopped - set(keep_unreaped))
    return len(stopped)
