"""How a worker hardens itself before it runs a job: address-space and file-size limits,
leaving root and the network (namespaces, an audit hook refusing sockets), hiding its
channel descriptors, not being dumpable, and exiting with its parent. Called by the
worker's start-up in `_child` (and `set_dumpable` by each job process)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import resource
import signal
import socket
import sys
import threading
import time
from typing import Any

from deepphoenix.sandbox._reaper import kill_tree

__all__ = ["GPU_DEVICES", "become", "block_network", "cuda_available", "hide",
           "isolate_network", "limit_files", "limit_memory", "set_dumpable", "watch_parent"]

_REFUSED = "network access is disabled in deepphoenix workers"
_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_PR_SET_DUMPABLE = 4


def limit_memory(limit: int | None) -> bool:
    # Address-space limits break CUDA's large reservations, so they apply to CPU workers.
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        return True
    return False


def limit_files(limit: int | None) -> None:
    """Cap every file this process and its programs write at `limit` bytes; a write past
    it fails with EFBIG (SIGXFSZ, which would kill the writer, is ignored, and programs
    inherit both)."""
    if limit:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def set_dumpable(on: bool) -> None:
    """Whether other processes of our user may open our /proc files (descriptors, memory)
    and trace us. The loop turns it off; a job process turns it back on for itself."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, int(on), 0, 0, 0)


def become(uid: int, gid: int) -> str:
    """Turn this process (root, holding only CAP_SETUID and CAP_SETGID) into `uid`:`gid`
    with no supplementary groups and no capabilities left; what it is now, in words."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise PermissionError(f"still uid {os.getresuid()}, gid {os.getresgid()}")
    return f"uid {uid} (not root)"


def isolate_network() -> str:
    """Leave the network: a new network namespace has only a loopback device, and it is
    down, so neither this process nor any program it starts can reach any address, not
    even 127.0.0.1 of the host. As root that is ``unshare(CLONE_NEWNET)``; otherwise inside
    a new user namespace that maps our own uid and gid. Must run before any thread starts.
    Returns what is in place, or why nothing is."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNET) == 0:
        return "network namespace"
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
        return f"none ({os.strerror(ctypes.get_errno())})"
    try:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                           ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    except OSError as exc:
        return f"user and network namespace (ids unmapped: {exc.strerror})"
    return "user and network namespace"


def hide(fd: int) -> int:
    """Move `fd` to a close-on-exec descriptor at an unpredictable number. Not a secret (a
    candidate can list /proc/self/fd): it only keeps programs it starts from inheriting the
    channel and blind writes from hitting it by number."""
    import fcntl

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        floor = random.SystemRandom().randrange(64, max(65, min(soft, 1024) - 64))
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)
    except OSError:  # a low descriptor limit
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.close(fd)
    return moved


def block_network() -> None:
    """Refuse name lookups and non-Unix connections, sends and binds in this process (audit
    hooks cannot be removed). This stops the libraries' downloads and a candidate's Python
    socket calls; programs a candidate starts are only cut off by the network namespace."""

    def refuse_inet(args: tuple[Any, ...]) -> None:
        if getattr(args[0], "family", None) != socket.AF_UNIX:
            raise PermissionError(_REFUSED)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if not event.startswith("socket."):
            return
        if event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
                     "socket.getnameinfo", "socket.sethostname"):
            raise PermissionError(_REFUSED)
        if event in ("socket.connect", "socket.sendto", "socket.sendmsg", "socket.bind"):
            refuse_inet(args)

    sys.addaudithook(hook)


# Device files one of which exists wherever torch can see a GPU (NVIDIA, ROCm, WSL).
GPU_DEVICES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia/gpus", "/dev/kfd",
                "/dev/dxg")


def cuda_available() -> bool:
    """Whether torch sees a GPU. Asked of torch only where a GPU device exists and is not
    hidden (``CUDA_VISIBLE_DEVICES`` empty or -1: a Ray actor that reserved none), so a
    worker whose jobs need no torch does not import it just to learn there is no GPU."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1")
    if "torch" not in sys.modules and (
            hidden or not any(os.path.exists(p) for p in GPU_DEVICES)):
        return False
    import torch

    return bool(torch.cuda.is_available())


def watch_parent() -> None:
    """Exit when the parent dies (even by SIGKILL), taking every process a job left behind
    with us: workers live in their own session, so nothing else would stop an orphan in the
    middle of a long job."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                kill_tree([os.getpid()], include_roots=False)
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
