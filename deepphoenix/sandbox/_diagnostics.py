"""Small jobs that exercise the sandbox itself: what a worker sees and what it refuses.
The sandbox tests run them in real workers."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from deepphoenix.sandbox._child import JobContext


def describe(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """The worker's view of itself: pid, process group, directory, environment, device."""
    import torch

    return {
        "pid": os.getpid(), "pgid": os.getpgid(0), "cwd": os.getcwd(),
        "env": dict(os.environ), "device": ctx.device(args.get("device")),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
    }


def sleep(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Sleep (and optionally spawn a child that sleeps too, to test group kills)."""
    child_pid = None
    if args.get("spawn"):
        child_pid = os.fork()
        if child_pid == 0:
            time.sleep(float(args["seconds"]))
            os._exit(0)
    ctx.progress(slept=0, child=child_pid)
    time.sleep(float(args["seconds"]))
    return {"slept": args["seconds"], "child": child_pid}


def connect(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Try to open a TCP connection; the sandbox should refuse it."""
    try:
        socket.create_connection((args.get("host", "127.0.0.1"), int(args.get("port", 9))), 1)
    except OSError as exc:
        return {"connected": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"connected": True, "error": ""}


def allocate(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Allocate `bytes` with torch; beyond the memory limit this raises."""
    import torch

    block = torch.ones(int(args["bytes"]), dtype=torch.uint8)
    return {"allocated": int(block.numel())}


def remember(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Keep a value in the worker's state and return what was there."""
    before = ctx.state.get("value")
    ctx.state["value"] = args.get("value")
    return {"before": before}


def die(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """End the worker process abruptly."""
    os._exit(int(args.get("code", 3)))


def fail(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    raise ValueError(args.get("message", "boom"))


def modules(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Which of `args["names"]` the worker has imported, and the device ``auto`` means."""
    import sys

    return {"loaded": sorted(n for n in args.get("names", ()) if n in sys.modules),
            "device": ctx.device("auto")}
