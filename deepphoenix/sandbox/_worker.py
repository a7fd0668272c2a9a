"""`Worker` and `WorkerPool`: persistent sandboxed processes that run jobs.

Each worker is a separate Python process in its own session and process group, started in
a fresh temporary directory (never the user's), with a scrubbed environment (offline Hugging
Face, no proxies, its own HOME and caches), an address-space limit on CPU, its own
network namespace where the kernel allows it, and sockets refused by an audit hook. It
imports what its jobs need once (`WorkerSettings.preload`: torch and transformers unless
the parent knows its jobs need neither) and then runs job after job. Results come back
over a pipe no program a candidate starts inherits, each message authenticated with a key
fresh for the job; a forged or torn message is a recorded failure and the worker is
replaced. A job that outlives its timeout has the worker and every process it started
killed (escapees from the process group included: the worker and its supervisor are child
subreapers); the worker is replaced at the next job. A worker that dies takes only its job
with it. Its output goes to a log capped at `WorkerSettings.log_cap` bytes. See
docs/sandbox.md for the threat model.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Generic, Protocol, TypeVar

from deepphoenix.errors import WorkerError
from deepphoenix.sandbox._confine import (
    WORKER_ID,
    cgroup_layer,
    confine_command,
    confinement,
    drops_root,
    gpu_devices,
)
from deepphoenix.sandbox._log import DEFAULT_LOG_CAP, LogDrain
from deepphoenix.sandbox._protocol import (
    FrameReader,
    ProtocolError,
    decode_signed,
    write_message,
)
from deepphoenix.sandbox._reaper import kill_tree
from deepphoenix.sandbox._records import Job, as_job

__all__ = ["DEFAULT_DISK_LIMIT", "JobResult", "JobStatus", "SlotPool", "Worker", "WorkerPool",
           "WorkerSettings", "default_memory_limit", "isolation_summary", "sandbox_line",
           "scratch_size", "scrubbed_env"]

class _Runs(Protocol):
    def run(self, job: Job, *, timeout: float | None = None,
            on_progress: Callable[[dict[str, Any]], None] | None = None) -> JobResult:
        ...


S = TypeVar("S", bound=_Runs)

_START_TIMEOUT = 300.0
_PASS_THROUGH = ("PATH", "LANG", "LC_ALL", "TZ", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH",
                 "VIRTUAL_ENV", "PYTHONPATH", "SYSTEMROOT")
_RAM_SHARE = 0.8  # of physical memory, split between the workers that run at once
# A confined worker's /tmp and /dev/shm are tmpfs of this share of its memory budget each;
# its address-space limit is what the budget leaves (docs/sandbox.md, Memory).
_SCRATCH_SHARE = 16
_MIN_SCRATCH = 16 * 2**20
DEFAULT_DISK_LIMIT = 10 * 2**30  # bytes a worker's workspace may hold, and a file's limit
_DISK_POLL = 0.5  # seconds between looks at a running job's workspace
_MAX_ENTRIES = 100_000  # files and folders a workspace may hold (inodes are a disk too)
FORGED = "forged or malformed reply"
# The worker's entry point: the job table, above every package whose job it runs.
_ENTRY = "deepphoenix.jobs"

class JobStatus(StrEnum):
    OK = "ok"
    ERROR = "error"  # the job raised (`kind` "exception"/"memory"), or its reply was forged
    #                  or malformed (`kind` "protocol"); `error` and `traceback` say what
    TIMEOUT = "timeout"  # killed at the hard timeout
    DIED = "died"  # the worker, or the job's own process, ended during the job (signal,
    #                OOM killer, exit)


@dataclass(frozen=True, slots=True)
class JobResult:
    status: JobStatus
    value: Any = None
    error: str = ""
    traceback: str = ""
    kind: str = ""  # for errors: "exception", "memory", "disk" or "protocol"
    seconds: float = 0.0
    leftovers: int = 0  # processes the job left behind, killed after it

    @property
    def ok(self) -> bool:
        return self.status is JobStatus.OK


def default_memory_limit(workers: int = 1) -> int | None:
    """80% of physical memory shared by `workers` running at once (None if unknown)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None
    return int(total * _RAM_SHARE / max(1, workers))


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How workers are started.

    `threads` 0 means torch's default. `memory_limit` is bytes of address space (CPU only:
    CUDA reserves more address space than there is memory); None means the default share,
    80% of physical memory divided by the workers of the pool (a lone worker: 80%), and 0
    means no limit. `preload` is imported once at start, after the audit hook (a job
    imports anything else it needs itself). `extra_jobs` adds job names to the worker's
    allow-list (tests).
    `log_cap` bounds each worker log file, in bytes. `isolate_network` puts the worker in a
    network namespace of its own where the kernel allows it.

    `confine` runs the worker in mount and PID namespaces of its own (bubblewrap, where
    installed and allowed; see `_confine`): the system and Python read-only, its workspace
    writable, nothing else of the host visible except `readable` (read-only) and
    `writable` paths. `hidden` paths (the run directory) stay invisible even where
    Python's own paths would include them. A confined worker's /tmp and /dev/shm are
    tmpfs of `scratch` bytes each (None: 1/16 of its memory budget each, taken out of its
    address-space limit).

    `disk_limit` bounds, in bytes, what a job's workspace may hold (a job over it is
    stopped and recorded with that reason) and every file a worker writes anywhere
    (``RLIMIT_FSIZE``); None means `DEFAULT_DISK_LIMIT` (10 GiB), 0 no limit.
    """

    threads: int = 0
    memory_limit: int | None = None
    device: str = "auto"
    preload: tuple[str, ...] = ("torch", "transformers")
    log_path: Path | None = None
    extra_env: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    extra_jobs: tuple[str, ...] = ()
    log_cap: int = DEFAULT_LOG_CAP
    isolate_network: bool = True
    confine: bool = True
    hidden: tuple[str, ...] = ()
    readable: tuple[str, ...] = ()
    writable: tuple[str, ...] = ()
    scratch: int | None = None
    disk_limit: int | None = None


def _memory_budget(settings: WorkerSettings, sharing: int) -> int | None:
    """A worker's memory budget in bytes (None: unlimited)."""
    if settings.memory_limit is None:
        return default_memory_limit(sharing)
    return settings.memory_limit or None


def scratch_size(settings: WorkerSettings, sharing: int = 1) -> int:
    """The size of each of a confined worker's /tmp and /dev/shm (tmpfs) in bytes."""
    if settings.scratch:
        return settings.scratch
    budget = _memory_budget(settings, sharing) or default_memory_limit(sharing) or 2**32
    return max(_MIN_SCRATCH, budget // _SCRATCH_SHARE)


def _disk_limit(settings: WorkerSettings) -> int | None:
    if settings.disk_limit is None:
        return DEFAULT_DISK_LIMIT
    return settings.disk_limit or None


def _memory_limit(settings: WorkerSettings, sharing: int, scratch: int = 0) -> int | None:
    """The address-space limit: the budget less the scratch tmpfs (`scratch` bytes each of
    /tmp and /dev/shm), which the kernel counts as memory but not as address space."""
    if settings.device.startswith("cuda"):
        return None  # "auto" is decided in the worker, after it sees whether CUDA is there
    budget = _memory_budget(settings, sharing)
    if budget is None:
        return None
    return max(budget - 2 * scratch, budget // 2)


def scrubbed_env(workspace: Path, settings: WorkerSettings, *,
                 fds: tuple[int, int] = (-1, -1), sharing: int = 1,
                 lifeline: int | None = None, scratch: int = 0,
                 user: tuple[int, int] | None = None) -> dict[str, str]:
    """The environment of a worker: a few pass-throughs, offline Hugging Face, no proxy.
    `fds` are the worker's ends of the job and result pipes; `sharing` how many workers
    share the machine's memory; `lifeline` the read end of a pipe only the parent holds
    (its supervisor sees the parent die when it reads as closed); `scratch` the size of
    each of a confined worker's /tmp and /dev/shm (0: not confined); `user` the uid and
    gid its supervisor turns into (a confined worker of a root parent)."""
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
        # transformers' progress bars start a tqdm monitor thread that outlives the job,
        # and a worker that leaves a thread running is retired: a proposer that loads its
        # model would start a fresh worker (torch import, model load) for every batch.
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONUNBUFFERED": "1",
        "NO_PROXY": "*",
        "no_proxy": "*",
        # Whether CUDA is there, asked of NVML: the driver itself is initialised only in
        # a job's own process (a CUDA driver initialised before a fork fails after it).
        "PYTORCH_NVML_BASED_CUDA_CHECK": "1",
        "DEEPPHOENIX_WORKER": json.dumps({
            "memory_limit": _memory_limit(settings, sharing, scratch),
            "file_limit": _disk_limit(settings),
            "threads": settings.threads,
            "device": settings.device,
            "preload": list(settings.preload),
            "extra_jobs": list(settings.extra_jobs),
            "isolate_network": settings.isolate_network,
            "jobs_fd": fds[0],
            "results_fd": fds[1],
            "lifeline_fd": lifeline,
            "user": list(user) if user else None,
            "scratch": ["/tmp", "/dev/shm"] if scratch else [],
        }),
    })
    if settings.threads:
        env["OMP_NUM_THREADS"] = str(settings.threads)
        env["MKL_NUM_THREADS"] = str(settings.threads)
    env.update(dict(settings.extra_env))
    return env


class _Forged(Exception):
    """A reply that is not what the trusted loop of the worker sends for this job."""


class Worker:
    """One sandboxed worker process; start it lazily, run jobs, close it. `sharing` is how
    many workers run at once (it sizes the default memory limit)."""

    def __init__(self, settings: WorkerSettings | None = None, name: str = "worker",
                 sharing: int = 1) -> None:
        self.settings = settings or WorkerSettings()
        self.name = name
        self.sharing = max(1, sharing)
        self.starts = 0
        self.startup_seconds: list[float] = []
        self.isolation: dict[str, Any] = {}  # what the last started worker reported
        self._proc: subprocess.Popen[bytes] | None = None
        self._workspace: Path | None = None
        self._jobs: IO[bytes] | None = None
        self._reader: FrameReader | None = None
        self._drain: LogDrain | None = None
        self._pidfd: int | None = None
        self._job_id = 0
        self._confined = False
        self._oom_kills = _oom_kills()
        self._lifeline: int | None = None  # the write end of the supervisor's lifeline
        self._also_readable: list[str] = []  # input paths jobs named (see _make_visible)
        self._also_writable: list[str] = []  # output folders jobs named (likewise)
        self._scratch = 0  # bytes of each of /tmp and /dev/shm (0: not confined)
        self._user: tuple[int, int] | None = None  # what a root parent's worker becomes
        self._in_own_process = False  # the job in flight runs in a process of its own

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def workspace(self) -> Path | None:
        return self._workspace

    @property
    def pid(self) -> int | None:
        """The pid of the worker's supervisor (the process started; the worker proper is
        its child)."""
        return None if self._proc is None else self._proc.pid

    def _log_path(self) -> Path | None:
        if self.settings.log_path is not None:
            return self.settings.log_path
        return None if self._workspace is None else self._workspace / "worker.log"

    def start(self) -> None:
        if self.alive:
            return
        self.kill()
        self._cleanup()
        _remove_orphaned_workspaces()
        workspace = Path(tempfile.mkdtemp(prefix=f"deepphoenix-{self.name}-{os.getpid()}-"))
        (workspace / ".home").mkdir()
        (workspace / ".tmp").mkdir()
        self._workspace = workspace
        log_path = self._log_path()
        assert log_path is not None
        log_path.parent.mkdir(parents=True, exist_ok=True)
        jobs_r, jobs_w = os.pipe()
        results_r, results_w = os.pipe()
        log_r, log_w = os.pipe()
        life_r, life_w = os.pipe()
        began = time.perf_counter()
        command, env_settings, outside = self._command(workspace)
        if self._user is not None:  # the workspace and output folders are the worker's
            for path in [str(workspace), str(workspace / ".home"), str(workspace / ".tmp"),
                         *self.settings.writable, *self._also_writable]:
                with contextlib.suppress(OSError):
                    os.chown(path, *self._user)
            workspace.chmod(0o711)  # bwrap, root without CAP_DAC_OVERRIDE, enters it
        try:
            env = scrubbed_env(workspace, env_settings, fds=(jobs_r, results_w),
                               sharing=self.sharing, lifeline=life_r,
                               scratch=self._scratch, user=self._user)
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL, stdout=log_w, stderr=log_w,
                pass_fds=(jobs_r, results_w, life_r), cwd=workspace, env=env,
                start_new_session=True,
            )
        except OSError as exc:
            for fd in (jobs_r, jobs_w, results_r, results_w, log_r, log_w, life_r, life_w):
                os.close(fd)
            raise WorkerError(f"cannot start a worker process: {exc}") from None
        finally:
            if self._proc is not None:
                for fd in (jobs_r, results_w, log_w, life_r):
                    os.close(fd)
        self._lifeline = life_w
        self._jobs = os.fdopen(jobs_w, "wb", buffering=0)
        self._reader = FrameReader(results_r)
        try:
            self._pidfd = os.pidfd_open(self._proc.pid)
        except (OSError, AttributeError):  # before Linux 5.3: death shows as end of stream
            self._pidfd = None
        self._drain = LogDrain(log_r, log_path, self.settings.log_cap)
        self.starts += 1
        key = secrets.token_bytes(32)
        try:
            write_message(self._jobs, {"type": "hello", "key": key.hex()})
            frame = self._reader.read(time.monotonic() + _START_TIMEOUT, self._pidfd)
            ready = None if frame is None else decode_signed(key, frame)
        except TimeoutError:
            self.kill()
            raise WorkerError(f"worker {self.name} did not start within {_START_TIMEOUT:.0f} s "
                              "(importing torch on a loaded machine?)") from None
        except (OSError, ProtocolError):
            ready = None
        if ready is None or ready.get("type") != "ready":
            self.kill()
            raise WorkerError(f"worker {self.name} failed to start: "
                              f"{self.log_tail() or 'no output'}")
        isolation = ready.get("isolation")
        self.isolation = {**(isolation if isinstance(isolation, dict) else {}), **outside,
                          "cgroup": cgroup_layer(), "disk_limit": _disk_limit(self.settings)}
        self.startup_seconds.append(time.perf_counter() - began)

    def _command(self, workspace: Path) -> tuple[list[str], WorkerSettings, dict[str, Any]]:
        """The command that starts the supervisor, the settings its environment carries,
        and the layers put in place from outside (filesystem, processes, network)."""
        command = [sys.executable, "-m", _ENTRY]
        settings = self.settings
        self._scratch, self._user = 0, None
        if not settings.confine:
            self._confined = False
            why = "none (not asked)"
            return command, settings, {"filesystem": why, "processes": why}
        found = confinement()
        self._confined = found.available
        if found.bwrap is None:
            why = f"none ({found.reason})"
            return command, settings, {"filesystem": why, "processes": why}
        self._scratch = scratch_size(settings, self.sharing)
        self._user = (WORKER_ID, WORKER_ID) if drops_root() else None
        outside: dict[str, Any] = {
            "filesystem": "mount namespace (bubblewrap): read-only system and Python "
                          "packages, writable workspace, minimal /dev, read-only /proc/sys, "
                          "host files hidden",
            "processes": "PID namespace (bubblewrap)",
            "bwrap": found.describe(),
            "scratch": self._scratch,
        }
        if settings.isolate_network:
            outside["network"] = "network namespace"
        modules = [*settings.preload, *(name.partition(":")[0] for name in settings.extra_jobs)]
        command = confine_command(found.bwrap, command, workspace, hidden=settings.hidden,
                                  readable=(*settings.readable, *self._also_readable),
                                  writable=(*settings.writable, *self._also_writable),
                                  isolate_network=settings.isolate_network,
                                  scratch=self._scratch, gpu=_wants_gpu(settings),
                                  modules=modules)
        # bwrap made the network namespace; the worker cannot (it has no capabilities).
        return command, replace(settings, isolate_network=False), outside

    def close(self) -> None:
        """Ask the worker to exit, then make sure it and everything it started is gone."""
        if self._proc is not None and self.alive and self._jobs is not None:
            try:
                write_message(self._jobs, {"type": "exit"})
                self._proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                pass
        self.kill()
        self._cleanup()

    def kill(self) -> int:
        """Kill the worker, its supervisor and every process it started, wherever they
        went (their own sessions included); how many processes a job had left besides
        the worker's own."""
        proc = self._proc
        if proc is None:
            return 0
        killed = 0
        if proc.poll() is None:
            killed = kill_tree([proc.pid], keep_unreaped=[proc.pid])
            # bwrap, the supervisor, the worker, and a job's own process: none is the job's
            ours = (3 if self._confined else 2) + (1 if self._in_own_process else 0)
            killed = max(0, killed - ours)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        for closer in (self._jobs, self._reader):
            if closer is None:
                continue
            with contextlib.suppress(OSError):
                if isinstance(closer, FrameReader):
                    os.close(closer.fd)
                else:
                    closer.close()
        self._jobs = self._reader = None
        for fd in (self._pidfd, self._lifeline):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._pidfd = self._lifeline = None
        if self._drain is not None:
            self._drain.join(timeout=5)
            self._drain = None
        self._proc = None
        return killed

    def _cleanup(self) -> None:
        if self._workspace is not None:
            shutil.rmtree(self._workspace, ignore_errors=True)
            self._workspace = None

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_tail(self, lines: int = 5) -> str:
        path = self._log_path()
        if path is None or not path.exists():
            return ""
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4000))
            text = f.read().decode("utf-8", "replace")
        return " | ".join(line for line in text.splitlines()[-lines:] if line.strip())

    # -- jobs ----------------------------------------------------------------------------
    def run(self, job: Job | str, args: dict[str, Any] | None = None, *,
            timeout: float | None = None,
            on_progress: Callable[[dict[str, Any]], None] | None = None) -> JobResult:
        """Run `job` (a job record, or the ``module:function`` name of an allowed extra job
        with its `args`) and wait for its result.

        Never raises for the job's own failure: exceptions, timeouts, deaths and forged or
        malformed replies come back as a `JobResult`. Raises `WorkerError` only if no
        worker can be started.
        """
        if self._reader is not None and self._reader.pending():
            self.kill()  # bytes between jobs: something other than the trusted loop wrote
        job = as_job(job, args)
        if self._make_visible(job) and self.alive:
            self.kill()  # a confined worker sees new paths only from its next start
        self.start()
        proc, jobs, reader = self._proc, self._jobs, self._reader
        assert proc is not None and jobs is not None and reader is not None
        self._job_id += 1
        job_id = self._job_id
        self._oom_kills = _oom_kills()
        key = secrets.token_bytes(32)
        began = time.perf_counter()
        self._in_own_process = job.in_own_process()
        try:
            write_message(jobs, {"type": "job", "id": job_id, "key": key.hex(),
                                 "kind": job.kind, "args": job.to_dict(),
                                 "isolated": self._in_own_process})
        except (BrokenPipeError, OSError):
            return self._died(began)
        deadline = None if timeout is None else time.monotonic() + timeout
        seq = 0
        while True:
            try:
                frame = self._read(reader, deadline)
                if frame is None:
                    return self._died(began)
                message = _check(decode_signed(key, frame), job_id, seq)
            except TimeoutError:
                left = self.kill()
                return JobResult(JobStatus.TIMEOUT, error=f"timed out after {timeout:g} s; "
                                 "the worker and every process it started were killed",
                                 seconds=time.perf_counter() - began, leftovers=left)
            except _OverBudget as over:
                left = self.kill()
                return JobResult(JobStatus.ERROR, error=str(over), kind="disk",
                                 seconds=time.perf_counter() - began, leftovers=left)
            except (ProtocolError, _Forged) as exc:
                self.kill()
                return JobResult(JobStatus.ERROR, error=f"{FORGED}: {exc}", kind="protocol",
                                 seconds=time.perf_counter() - began)
            except OSError:
                return self._died(began)
            seq += 1
            if message["type"] == "progress":
                if on_progress is not None:
                    on_progress(message)
                continue
            self._in_own_process = False  # its process has ended
            return self._result(message, began)

    def _read(self, reader: FrameReader, deadline: float | None) -> bytes | None:
        """The next frame of the job's reply (see `FrameReader.read`), looking at the
        workspace every `_DISK_POLL` seconds meanwhile: `_OverBudget` when it holds more
        than the disk budget."""
        limit = _disk_limit(self.settings)
        if limit is None or self._workspace is None:
            return reader.read(deadline, self._pidfd)
        while True:
            look = time.monotonic() + _DISK_POLL
            try:
                return reader.read(look if deadline is None else min(deadline, look),
                                   self._pidfd)
            except TimeoutError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
            over = _workspace_over(self._workspace, limit, self._log_path())
            if over:
                raise _OverBudget(over)

    def _make_visible(self, job: Job) -> bool:
        """Add the existing inputs `job` declares to a confined worker's read-only binds,
        and the output folders it declares (created here) to its writable ones, where its
        settings do not already cover them; whether any was added."""
        if not self.settings.confine:
            return False
        paths = job.paths()
        mine = confinement().available and drops_root()
        for folder in paths.outputs.values():
            os.makedirs(folder, exist_ok=True)
            if mine:  # a root parent's confined worker writes as WORKER_ID
                with contextlib.suppress(OSError):
                    os.chown(folder, WORKER_ID, WORKER_ID)
        writable = [*self.settings.writable, *self._also_writable]
        seen = [*self.settings.readable, *writable, *self._also_readable]
        added = False
        for found, covers, also in ((paths.inputs.values(), seen, self._also_readable),
                                    (paths.outputs.values(), writable, self._also_writable)):
            for value in found:
                if not os.path.exists(value):
                    continue
                path = os.path.abspath(value)
                if not any(path == p or path.startswith(p.rstrip("/") + "/") for p in covers):
                    also.append(path)
                    covers.append(path)
                    added = True
        return added

    def _result(self, message: dict[str, Any], began: float) -> JobResult:
        seconds = message.get("seconds")
        if not isinstance(seconds, int | float) or not math.isfinite(seconds):
            seconds = time.perf_counter() - began
        leftovers = message.get("leftovers")
        leftovers = leftovers if isinstance(leftovers, int) else 0
        if message.get("stray_threads"):
            self.kill()  # a thread left running could read the next job's key
        if message.get("ok") is True:
            return JobResult(JobStatus.OK, value=message.get("value"), seconds=seconds,
                             leftovers=leftovers)
        if message.get("kind") == "died":  # the job's own process, not the worker
            return JobResult(JobStatus.DIED, error=self._died_why(
                str(message.get("error", "")), "SIGKILL" in str(message.get("error", ""))),
                kind="died", seconds=seconds, leftovers=leftovers)
        return JobResult(JobStatus.ERROR, error=str(message.get("error", "")),
                         traceback=str(message.get("traceback", "")),
                         kind=str(message.get("kind", "exception")), seconds=seconds,
                         leftovers=leftovers)

    def _died(self, began: float) -> JobResult:
        proc = self._proc
        code = None
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = proc.wait(timeout=10)
        self.kill()
        if code is not None and self._confined and code > 128:
            code = 128 - code  # bwrap reports a child's death by signal N as exit 128 + N
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            why = self._died_why(f"the worker was killed by {name}", name == "SIGKILL")
        else:
            why = f"the worker exited with code {code}"
        tail = self.log_tail()
        return JobResult(JobStatus.DIED, error=why + (f": {tail}" if tail else ""),
                         kind="died", seconds=time.perf_counter() - began)

    def _died_why(self, why: str, killed: bool) -> str:
        """`why`, with the OOM killer named when a SIGKILL came while its count rose."""
        kills = _oom_kills()
        if killed and kills is not None and self._oom_kills is not None \
                and kills > self._oom_kills:
            why += " (the kernel's OOM killer killed a process during the job)"
        if "SIGXFSZ" in why:
            why += " (a file passed the worker's file-size limit, --disk-limit)"
        return why


class _OverBudget(Exception):
    """A running job's workspace holds more than its disk budget."""


def _wants_gpu(settings: WorkerSettings) -> bool:
    """Whether a confined worker gets the GPU's device nodes: a CUDA device, or ``auto``
    on a machine with one (not hidden from this worker by CUDA_VISIBLE_DEVICES)."""
    if settings.device.startswith("cuda"):
        return True
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1")
    return settings.device == "auto" and not hidden and bool(gpu_devices())


def _workspace_over(workspace: Path, limit: int, log: Path | None) -> str:
    """Why `workspace` is over its budget (bytes on disk, or files and folders), or ""."""
    used, entries = 0, 0
    todo = [str(workspace)]
    while todo:
        try:
            found = list(os.scandir(todo.pop()))
        except OSError:
            continue
        for entry in found:
            entries += 1
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if entry.is_dir(follow_symlinks=False):
                todo.append(entry.path)
            elif log is None or not entry.path.startswith(str(log)):
                used += info.st_blocks * 512
        if used > limit:
            return (f"the job wrote more than {_size(limit)} to its workspace (the disk "
                    "budget, --disk-limit); it was stopped")
        if entries > _MAX_ENTRIES:
            return (f"the job made more than {_MAX_ENTRIES:,} files and folders in its "
                    "workspace; it was stopped")
    return ""


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _remove_orphaned_workspaces() -> None:
    """Remove the workspaces of parents that were killed. Their supervisors empty them, but
    a confined worker's workspace is a mount point in its sandbox, which cannot remove the
    folder itself; the name carries the parent's process id. A root parent's workspaces
    belong to the uid its workers run as."""
    for folder in Path(tempfile.gettempdir()).glob("deepphoenix-*-*-*"):
        owner = folder.name.rsplit("-", 2)[-2]
        try:
            ours = (os.getuid(), WORKER_ID) if drops_root() else (os.getuid(),)
            if (owner.isdigit() and folder.is_dir() and folder.stat().st_uid in ours
                    and not Path(f"/proc/{owner}").exists()):
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass


def isolation_summary(isolation: dict[str, Any]) -> str:
    """One line on the layers a worker reported (`Worker.isolation`): those in place, and
    those that are not, each reason said once."""
    active: list[str] = []
    missing: dict[str, list[str]] = {}  # reason -> layers
    for key, word in (("filesystem", "mount"), ("processes", "PID"), ("network", "network")):
        value = str(isolation.get(key, "none (not reported)"))
        if value.startswith("none"):
            missing.setdefault(value[len("none "):], []).append(word)
        else:
            active.append(word)
    parts = []
    if active:
        how = ""
        if "mount" in active:
            bwrap = str(isolation.get("bwrap", ""))
            how = f" ({bwrap})" if bwrap.startswith("bubblewrap ") else " (bubblewrap)"
        parts.append(f"{', '.join(active)} namespace{'s' if len(active) > 1 else ''}{how}")
    parts += [f"no {' or '.join(words)} namespace {why}" for why, words in missing.items()]
    if isolation.get("user"):
        parts.append(f"runs as {isolation['user']}")
    if isolation.get("memory_limit"):
        parts.append(f"memory limit {int(isolation['memory_limit']) / 2**30:.1f} GiB "
                     "per process")
    if isolation.get("scratch"):
        parts.append(f"/tmp and /dev/shm {_size(int(isolation['scratch']))} each")
    if isolation.get("disk_limit"):
        parts.append(f"disk {_size(int(isolation['disk_limit']))} per workspace")
    cgroup = str(isolation.get("cgroup", ""))
    if cgroup.startswith("none"):
        parts.append(f"no cgroup per worker {cgroup[len('none '):]}")
    return "sandbox: " + "; ".join(parts)


def sandbox_line(settings: WorkerSettings, sharing: int = 1) -> str:
    """What workers with `settings` will get, in one line, before any starts: which
    bubblewrap (or why none), the user they run as, their scratch and disk limits."""
    if not settings.confine:
        return "sandbox: no mount or PID namespace (not asked)"
    found = confinement()
    if found.bwrap is None:
        return f"sandbox: no mount or PID namespace ({found.reason})"
    user = f"uid {WORKER_ID}" if drops_root() else f"uid {os.getuid()} in a user namespace"
    disk = _disk_limit(settings)
    return (f"sandbox: mount, PID, network namespaces ({found.describe()}); workers run as "
            f"{user}, not root; /tmp and /dev/shm {_size(scratch_size(settings, sharing))} "
            f"each; disk {_size(disk) if disk else 'unlimited'} per workspace")


def _oom_kills() -> int | None:
    """How many processes the kernel's OOM killer has killed since boot (/proc/vmstat),
    or None where the kernel does not say."""
    try:
        with open("/proc/vmstat") as f:
            for line in f:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _check(message: dict[str, Any], job_id: int, seq: int) -> dict[str, Any]:
    """`message` if it is the next message of job `job_id`; `_Forged` otherwise."""
    kind = message.get("type")
    if kind not in ("progress", "result"):
        raise _Forged(f"unexpected message type {str(kind)[:40]!r}")
    if message.get("id") != job_id:
        raise _Forged(f"a reply for job {str(message.get('id'))[:40]}, not {job_id}")
    if message.get("seq") != seq:
        raise _Forged(f"message {str(message.get('seq'))[:40]} out of order (expected {seq})")
    return message


class SlotPool(Generic[S]):
    """Jobs spread over `slots` (anything with ``run(job, timeout=, on_progress=)``:
    local workers, Ray-held ones), one job per slot at a time; results in completion
    order. The one scheduler behind `WorkerPool` and the Ray executor."""

    def __init__(self, slots: Sequence[S], name: str = "deepphoenix") -> None:
        self.slots = list(slots)
        self._idle: queue.Queue[S] = queue.Queue()
        for slot in self.slots:
            self._idle.put(slot)
        self._threads = ThreadPoolExecutor(max_workers=max(1, len(self.slots)),
                                           thread_name_prefix=name)

    def _run_on_idle(self, key: Any, job: Job, timeout: float | None,
                     on_progress: Callable[[Any, dict[str, Any]], None] | None) -> JobResult:
        slot = self._idle.get()
        try:
            report = None if on_progress is None else (lambda m: on_progress(key, m))
            result: JobResult = slot.run(job, timeout=timeout, on_progress=report)
            return result
        finally:
            self._idle.put(slot)

    def run_all(self, jobs: Iterable[tuple[Any, Job, float | None]],
                on_progress: Callable[[Any, dict[str, Any]], None] | None = None,
                ) -> Iterator[tuple[Any, JobResult]]:
        """Run (key, job, timeout) jobs; yield (key, result) in completion order.
        `on_progress(key, message)` is called from the pool's threads."""
        futures = {
            self._threads.submit(self._run_on_idle, key, job, timeout, on_progress): key
            for key, job, timeout in jobs
        }
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            for future in futures:
                future.cancel()

    def submit(self, key: Any, job: Job, timeout: float | None,
               on_progress: Callable[[Any, dict[str, Any]], None] | None = None,
               ) -> Future[JobResult]:
        """Start one job on the next idle slot (queued while all are busy); its future
        holds the result. What the asynchronous search loop builds on: a job goes in as
        soon as a slot frees, with no batch to wait for."""
        return self._threads.submit(self._run_on_idle, key, job, timeout, on_progress)

    def shutdown(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)


class WorkerPool(SlotPool[Worker]):
    """`size` workers running jobs concurrently; results come back as they complete."""

    def __init__(self, size: int, settings: WorkerSettings | None = None,
                 log_dir: Path | None = None) -> None:
        if size < 1:
            raise WorkerError(f"a worker pool needs at least one worker, got {size}")
        base = settings or WorkerSettings()
        super().__init__([Worker(_with_log(base, log_dir, i), name=f"eval{i}", sharing=size)
                          for i in range(size)])

    @property
    def workers(self) -> list[Worker]:
        return self.slots

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        self.shutdown()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _with_log(settings: WorkerSettings, log_dir: Path | None, index: int) -> WorkerSettings:
    if log_dir is None:
        return settings
    return replace(settings, log_path=log_dir / f"eval{index}.log")
