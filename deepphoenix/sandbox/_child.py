"""The worker process: imports torch once, then runs jobs from its parent until told to
stop. Started by `Worker` as ``python -m deepphoenix.sandbox._child``.

Its stdout is the protocol channel; anything a job prints goes to stderr (the worker log).
Its stdin is the job channel; a job that reads stdin reads /dev/null.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from deepphoenix.sandbox._protocol import (
    failure_text,
    is_out_of_memory,
    read_message,
    write_message,
)

ALLOWED_PREFIX = "deepphoenix."


class JobContext:
    """What a job function gets besides its arguments: progress reporting, state kept
    between jobs of this worker (a trained proposer model), the workspace, the device."""

    def __init__(self, channel: IO[bytes], workspace: Path, device: str) -> None:
        self._channel = channel
        self.workspace = workspace
        self.requested_device = device
        self.state: dict[str, Any] = {}
        self.job_id: int = 0

    def progress(self, **fields: Any) -> None:
        write_message(self._channel, {"type": "progress", "id": self.job_id, **fields})

    def device(self, requested: str | None = None) -> str:
        """``auto`` resolves to ``cuda`` when a GPU is visible, else ``cpu``."""
        import torch

        choice = requested or self.requested_device
        if choice == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return choice


def _limit_memory(limit: int | None) -> None:
    # Address-space limits break CUDA's large reservations, so they apply to CPU workers.
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _block_network() -> None:
    """Refuse name lookups and outgoing non-Unix socket connections in this process (audit
    hooks cannot be removed). This stops the libraries' downloads; it is not a network
    sandbox (`sendto` on an unconnected socket, or a child process, is not covered)."""
    import socket

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "socket.getaddrinfo":
            raise PermissionError("network access is disabled in deepphoenix workers")
        if event == "socket.connect":
            sock = args[0]
            if getattr(sock, "family", None) != socket.AF_UNIX:
                raise PermissionError("network access is disabled in deepphoenix workers")

    sys.addaudithook(hook)


def _watch_parent() -> None:
    """Exit when the parent dies (even by SIGKILL): workers live in their own session, so
    nothing else would stop an orphan in the middle of a long job."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _resolve(name: str) -> Callable[[dict[str, Any], JobContext], Any]:
    if not name.startswith(ALLOWED_PREFIX):
        raise PermissionError(f"job {name!r} is not a deepphoenix job")
    module_name, _, attr = name.partition(":")
    function = getattr(importlib.import_module(module_name), attr)
    if not callable(function):
        raise TypeError(f"job {name!r} is not callable")
    return function


def main() -> None:
    channel = os.fdopen(os.dup(1), "wb")
    jobs = os.fdopen(os.dup(0), "rb")
    os.dup2(2, 1)  # prints from jobs and candidates go to the log
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    settings = json.loads(os.environ.get("DEEPPHOENIX_WORKER", "{}"))
    _watch_parent()
    device = settings.get("device", "auto")
    if device != "auto":
        _limit_memory(settings.get("memory_limit"))
    _block_network()
    for module in settings.get("preload", []):
        importlib.import_module(module)
    if device == "auto" and not _cuda_available():
        _limit_memory(settings.get("memory_limit"))  # "auto" on a machine without CUDA
    threads = settings.get("threads") or 0
    if threads and "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)
    workspace = Path.cwd()
    context = JobContext(channel, workspace, settings.get("device", "auto"))
    write_message(channel, {"type": "ready"})
    while True:
        message = read_message(jobs)
        if message is None or message.get("type") == "exit":
            break
        context.job_id = int(message.get("id", 0))
        began = time.perf_counter()
        try:
            value = _resolve(str(message["fn"]))(message.get("args", {}), context)
            reply = {"type": "result", "id": context.job_id, "ok": True, "value": value}
        except BaseException as exc:  # a job's failure is reported, never fatal
            error, trace = failure_text(exc)
            reply = {
                "type": "result", "id": context.job_id, "ok": False,
                "kind": "memory" if is_out_of_memory(exc) else "exception",
                "error": error, "traceback": trace,
            }
        reply["seconds"] = time.perf_counter() - began
        os.chdir(workspace)  # a job that changed directory does not move the next one
        gc.collect()
        write_message(channel, reply)


if __name__ == "__main__":
    main()
