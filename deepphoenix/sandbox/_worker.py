"""`Worker` and `WorkerPool`: persistent sandboxed processes that run jobs.

Each worker is a separate Python process in its own session and process group, started in
a fresh temporary directory (never the user's), with a scrubbed environment (offline
Hugging Face, no proxies, its own HOME and caches), an address-space limit on CPU, and
sockets refused by an audit hook. It imports torch once and then runs job after job. A job
that outlives its timeout has the worker's whole process group killed; the worker is
replaced at the next job. A worker that dies takes only its job with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from deepphoenix.errors import WorkerError
from deepphoenix.sandbox._protocol import ProtocolError, read_message, write_message

__all__ = ["JobResult", "JobStatus", "Worker", "WorkerPool", "WorkerSettings", "scrubbed_env"]

_START_TIMEOUT = 300.0
_PASS_THROUGH = ("PATH", "LANG", "LC_ALL", "TZ", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH",
                 "VIRTUAL_ENV", "PYTHONPATH", "SYSTEMROOT")


class JobStatus(StrEnum):
    OK = "ok"
    ERROR = "error"  # the job raised; `error` and `traceback` say what
    TIMEOUT = "timeout"  # killed at the hard timeout
    DIED = "died"  # the worker process ended during the job (signal, OOM killer, exit)


@dataclass(frozen=True, slots=True)
class JobResult:
    status: JobStatus
    value: Any = None
    error: str = ""
    traceback: str = ""
    kind: str = ""  # for errors: "exception" or "memory"
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is JobStatus.OK


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How workers are started. `threads` 0 means torch's default; `memory_limit` is bytes
    of address space (CPU only; None for no limit)."""

    threads: int = 0
    memory_limit: int | None = None
    device: str = "auto"
    preload: tuple[str, ...] = ("torch", "transformers")
    log_path: Path | None = None
    extra_env: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def scrubbed_env(workspace: Path, settings: WorkerSettings) -> dict[str, str]:
    """The environment of a worker: a few pass-throughs, offline Hugging Face, no proxy."""
    env = {k: os.environ[k] for k in _PASS_THROUGH if k in os.environ}
    home = workspace / ".home"
    env.update({
        "HOME": str(home),
        "TMPDIR": str(workspace / ".tmp"),
        "HF_HOME": str(home / "hf"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONUNBUFFERED": "1",
        "NO_PROXY": "*",
        "no_proxy": "*",
        "DEEPPHOENIX_WORKER": json.dumps({
            # CUDA needs large address-space reservations; "auto" is decided in the worker.
            "memory_limit": (None if settings.device.startswith("cuda")
                             else settings.memory_limit),
            "threads": settings.threads,
            "device": settings.device,
            "preload": list(settings.preload),
        }),
    })
    if settings.threads:
        env["OMP_NUM_THREADS"] = str(settings.threads)
        env["MKL_NUM_THREADS"] = str(settings.threads)
    env.update(dict(settings.extra_env))
    return env


class Worker:
    """One sandboxed worker process; start it lazily, run jobs, close it."""

    def __init__(self, settings: WorkerSettings | None = None, name: str = "worker") -> None:
        self.settings = settings or WorkerSettings()
        self.name = name
        self.starts = 0
        self.startup_seconds: list[float] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._workspace: Path | None = None
        self._log: IO[bytes] | None = None
        self._job_id = 0

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def workspace(self) -> Path | None:
        return self._workspace

    def start(self) -> None:
        if self.alive:
            return
        self._cleanup()
        workspace = Path(tempfile.mkdtemp(prefix=f"deepphoenix-{self.name}-"))
        (workspace / ".home").mkdir()
        (workspace / ".tmp").mkdir()
        self._workspace = workspace
        if self.settings.log_path is not None:
            self.settings.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.settings.log_path, "ab")  # noqa: SIM115 - kept open
        else:
            self._log = open(workspace / "worker.log", "ab")  # noqa: SIM115
        began = time.perf_counter()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "deepphoenix.sandbox._child"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                cwd=workspace, env=scrubbed_env(workspace, self.settings),
                start_new_session=True, bufsize=0,
            )
        except OSError as exc:
            raise WorkerError(f"cannot start a worker process: {exc}") from None
        self.starts += 1
        try:
            ready = self._read(deadline=time.monotonic() + _START_TIMEOUT)
        except TimeoutError:
            self.kill()
            raise WorkerError(f"worker {self.name} did not start within {_START_TIMEOUT:.0f} s "
                              "(importing torch on a loaded machine?)") from None
        if ready is None or ready.get("type") != "ready":
            tail = self.log_tail()
            self.kill()
            raise WorkerError(f"worker {self.name} failed to start: {tail or 'no output'}")
        self.startup_seconds.append(time.perf_counter() - began)

    def close(self) -> None:
        """Ask the worker to exit, then make sure its whole process group is gone."""
        if self._proc is not None and self.alive:
            try:
                assert self._proc.stdin is not None
                write_message(self._proc.stdin, {"type": "exit"})
                self._proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                pass
        self.kill()
        self._cleanup()

    def kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._proc = None

    def _cleanup(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._workspace is not None:
            shutil.rmtree(self._workspace, ignore_errors=True)
            self._workspace = None

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_tail(self, lines: int = 5) -> str:
        path = self.settings.log_path or (self._workspace / "worker.log" if self._workspace
                                          else None)
        if path is None or not path.exists():
            return ""
        text = path.read_bytes()[-4000:].decode("utf-8", "replace")
        return " | ".join(line for line in text.splitlines()[-lines:] if line.strip())

    # -- jobs ----------------------------------------------------------------------------
    def _read(self, deadline: float | None) -> dict[str, Any] | None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                raise TimeoutError
            try:
                return read_message(proc.stdout)
            except (ProtocolError, ValueError, OSError):
                return None

    def run(self, fn: str, args: dict[str, Any] | None = None, timeout: float | None = None,
            on_progress: Callable[[dict[str, Any]], None] | None = None) -> JobResult:
        """Run job `fn` (``module:function`` in deepphoenix) and wait for its result.

        Never raises for the job's own failure: exceptions, timeouts and deaths come back
        as a `JobResult`. Raises `WorkerError` only if no worker can be started.
        """
        self.start()
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        self._job_id += 1
        began = time.perf_counter()
        try:
            write_message(proc.stdin, {"type": "job", "id": self._job_id, "fn": fn,
                                       "args": args or {}})
        except (BrokenPipeError, OSError):
            return self._died(began)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                message = self._read(deadline)
            except TimeoutError:
                self.kill()
                return JobResult(JobStatus.TIMEOUT, error=f"timed out after {timeout:g} s; "
                                 "the worker's process group was killed",
                                 seconds=time.perf_counter() - began)
            if message is None:
                return self._died(began)
            if message.get("type") == "progress":
                if on_progress is not None:
                    on_progress(message)
                continue
            if message.get("type") == "result":
                seconds = float(message.get("seconds", time.perf_counter() - began))
                if message.get("ok"):
                    return JobResult(JobStatus.OK, value=message.get("value"), seconds=seconds)
                return JobResult(JobStatus.ERROR, error=str(message.get("error", "")),
                                 traceback=str(message.get("traceback", "")),
                                 kind=str(message.get("kind", "exception")), seconds=seconds)

    def _died(self, began: float) -> JobResult:
        proc = self._proc
        code = None
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = proc.wait(timeout=10)
        self.kill()
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            why = f"the worker was killed by {name}"
            if name == "SIGKILL":
                why += " (out of memory?)"
        else:
            why = f"the worker exited with code {code}"
        tail = self.log_tail()
        return JobResult(JobStatus.DIED, error=why + (f": {tail}" if tail else ""),
                         kind="died", seconds=time.perf_counter() - began)


class WorkerPool:
    """`size` workers running jobs concurrently; results come back as they complete."""

    def __init__(self, size: int, settings: WorkerSettings | None = None,
                 log_dir: Path | None = None) -> None:
        if size < 1:
            raise WorkerError(f"a worker pool needs at least one worker, got {size}")
        base = settings or WorkerSettings()
        self.workers = [
            Worker(_with_log(base, log_dir, i), name=f"eval{i}") for i in range(size)
        ]
        self._idle: queue.Queue[Worker] = queue.Queue()
        for worker in self.workers:
            self._idle.put(worker)
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="deepphoenix")

    def _run_on_idle(self, key: Any, fn: str, args: dict[str, Any], timeout: float | None,
                     on_progress: Callable[[Any, dict[str, Any]], None] | None) -> JobResult:
        worker = self._idle.get()
        try:
            report = None if on_progress is None else (lambda m: on_progress(key, m))
            return worker.run(fn, args, timeout, report)
        finally:
            self._idle.put(worker)

    def run_all(self, jobs: Iterable[tuple[Any, str, dict[str, Any], float | None]],
                on_progress: Callable[[Any, dict[str, Any]], None] | None = None,
                ) -> Iterator[tuple[Any, JobResult]]:
        """Run (key, fn, args, timeout) jobs; yield (key, result) in completion order.
        `on_progress(key, message)` is called from the pool's threads."""
        futures = {
            self._executor.submit(self._run_on_idle, key, fn, args, timeout, on_progress): key
            for key, fn, args, timeout in jobs
        }
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _with_log(settings: WorkerSettings, log_dir: Path | None, index: int) -> WorkerSettings:
    if log_dir is None:
        return settings
    return replace(settings, log_path=log_dir / f"eval{index}.log")
