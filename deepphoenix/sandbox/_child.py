"""The worker process: imports what its jobs need once (torch, for most: the parent says
which, in ``preload``), then runs jobs from its parent until told to stop. `Worker`
starts it as ``python -m deepphoenix.jobs``, whose `serve` call hands this module the table
of job kinds (a job record's class and the function that runs it).

Two pipes inherited at numbers given in ``DEEPPHOENIX_WORKER`` are the channels: jobs come
in on one, authenticated results and progress go out on the other (see `_protocol`). Both
are moved to close-on-exec descriptors at unpredictable numbers, so no program a candidate
starts inherits them; stdin is /dev/null and stdout and stderr are the worker log.

The process started first is a small *supervisor*: a child subreaper that forks the worker
proper and never runs a job. Orphans of the worker's descendants are re-parented to the
worker (a subreaper too) while it lives, and to the supervisor once it has died; when the
worker ends, however it ends (``os._exit`` from a candidate, the OOM killer), the
supervisor kills every process left below it and exits the way the worker did. So a
process a candidate started can outlive neither its job nor its worker.

Before anything else runs the worker leaves the network (a new network namespace where the
kernel allows it), becomes a child subreaper, and installs an audit hook that refuses name
lookups and non-Unix connections, sends and binds. After every job it kills every process
the job left behind.

In a confined worker of a root parent, the supervisor first turns into an unprivileged
user (``user`` in the settings: bubblewrap left it only the capabilities to do so), so no
process of the sandbox is root. Every file the worker and its programs write is capped at
``file_limit`` bytes (``RLIMIT_FSIZE``; past it a write fails with ``EFBIG``).

The worker's loop is trusted code: it reads jobs, signs replies, and never runs a
candidate. A job whose record says so (`Job.ISOLATED`: evaluations, quine generations)
runs in a process forked for it: that process closes the result channel and forgets its
key before the job starts, and reports its value and progress over a pipe of its own as
plain JSON; the loop checks each message, signs and forwards it. The loop is not
dumpable, so no process of the same user can open its descriptors or read its memory
through /proc or ptrace. A job process that dies is reported with its signal or exit
code; what a job changed in its process (a patched library, a thread, a cache) dies with
it.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import json
import os
import random
import resource
import select
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, NoReturn

from deepphoenix.sandbox._protocol import (
    FrameReader,
    ProtocolError,
    encode_signed,
    encode_unsigned,
    failure_kind,
    failure_text,
    read_message,
    write_all,
)
from deepphoenix.sandbox._reaper import become_subreaper, kill_tree
from deepphoenix.sandbox._records import Job

# What a worker runs: a job record's kind, found in the table `serve` is given (each entry
# loads its function on first use, so a worker imports only what its jobs need). Nothing
# else can be called, except the ``module:function`` (or ``module:*``) names the parent
# adds with `WorkerSettings.extra_jobs` (the sandbox's tests and diagnostics), which get
# the job's argument dict.
JobFunction = Callable[[Any, "JobContext"], Any]
JobTable = Mapping[type[Job], Callable[[], JobFunction]]

_REFUSED = "network access is disabled in deepphoenix workers"
_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_PR_SET_DUMPABLE = 4
# What a job process may say about its own failure; "died" and "protocol" are the loop's.
_FAILURE_KINDS = ("exception", "memory", "disk")
# Modules the loop never imports on a job process's word: they start threads or processes
# (torch.compile's workers), and the loop forks every job.
_NOT_WARMED = ("torch._inductor", "torch._dynamo", "torch.compiler", "torch.distributed",
               "torch.multiprocessing", "torch.utils.data", "torch.testing")
_MAX_WARMED = 5000


class JobContext:
    """What a job function gets besides its arguments: progress reporting, state kept
    between jobs of this worker (a trained proposer model), the workspace, the device."""

    def __init__(self, send: Callable[[dict[str, Any]], None], workspace: Path,
                 device: str) -> None:
        self._send = send
        self.workspace = workspace
        self.requested_device = device
        self.state: dict[str, Any] = {}
        self.job_id: int = 0

    def progress(self, **fields: Any) -> None:
        self._send({**fields, "type": "progress"})

    def device(self, requested: str | None = None) -> str:
        """``auto`` resolves to ``cuda`` when a GPU is visible, else ``cpu`` (without
        importing torch on a machine with no GPU device at all)."""
        choice = requested or self.requested_device
        if choice == "auto":
            return "cuda" if _cuda_available() else "cpu"
        return choice


class _Channel:
    """The result channel: every message carries the current job's id, a sequence number
    and a tag under the current key."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._key = b""
        self._id = 0
        self._seq = 0
        self._lock = threading.Lock()

    def begin(self, key: bytes, job_id: int) -> None:
        self._key, self._id, self._seq = key, job_id, 0

    def send(self, message: dict[str, Any]) -> None:
        with self._lock:
            if self._fd < 0:
                raise OSError("the result channel is closed in a job's own process")
            frame = encode_signed(self._key, {**message, "id": self._id, "seq": self._seq})
            self._seq += 1
            write_all(self._fd, frame)

    def forget(self) -> None:
        """In a job's own process: close the channel and drop its key, so that code which
        finds this object (walking frames up to `serve`) holds nothing."""
        fd, self._fd, self._key = self._fd, -1, b""
        with contextlib.suppress(OSError):
            os.close(fd)


class _PipeSender:
    """A job process's reports to the loop: plain framed JSON over its own pipe."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        with self._lock:
            write_all(self._fd, encode_unsigned(message))


def _limit_memory(limit: int | None) -> bool:
    # Address-space limits break CUDA's large reservations, so they apply to CPU workers.
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        return True
    return False


def _limit_files(limit: int | None) -> None:
    """Cap every file this process and its programs write at `limit` bytes; a write past
    it fails with EFBIG (SIGXFSZ, which would kill the writer, is ignored, and programs
    inherit both)."""
    if limit:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _set_dumpable(on: bool) -> None:
    """Whether other processes of our user may open our /proc files (descriptors, memory)
    and trace us. The loop turns it off; a job process turns it back on for itself."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, int(on), 0, 0, 0)


def _become(uid: int, gid: int) -> str:
    """Turn this process (root, holding only CAP_SETUID and CAP_SETGID) into `uid`:`gid`
    with no supplementary groups and no capabilities left; what it is now, in words."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise PermissionError(f"still uid {os.getresuid()}, gid {os.getresgid()}")
    return f"uid {uid} (not root)"


def _isolate_network() -> str:
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


def _hide(fd: int) -> int:
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


def _block_network() -> None:
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
_GPU_DEVICES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia/gpus", "/dev/kfd",
                "/dev/dxg")


def _cuda_available() -> bool:
    """Whether torch sees a GPU. Asked of torch only where a GPU device exists and is not
    hidden (``CUDA_VISIBLE_DEVICES`` empty or -1: a Ray actor that reserved none), so a
    worker whose jobs need no torch does not import it just to learn there is no GPU."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1")
    if "torch" not in sys.modules and (
            hidden or not any(os.path.exists(p) for p in _GPU_DEVICES)):
        return False
    import torch

    return bool(torch.cuda.is_available())


def _watch_parent() -> None:
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


def is_allowed(name: str, allowed: frozenset[str]) -> bool:
    """`name` (``module:function``) is in `allowed`, by name or by its module's ``:*``."""
    module, _, function = name.partition(":")
    if not function or function.startswith("_"):
        return False
    return name in allowed or f"{module}:*" in allowed


class _Jobs:
    """The job kinds a worker runs: the table's records, then the allowed extra names."""

    def __init__(self, table: JobTable, extra: frozenset[str]) -> None:
        self._table = {record.KIND: (record, load) for record, load in table.items()}
        self._extra = extra
        self._loaded: dict[str, JobFunction] = {}

    def isolated(self, kind: str, asked: bool) -> bool:
        """Whether `kind` runs in a process of its own: its record's `ISOLATED` (which the
        parent cannot turn off), or the parent asked (`NamedJob.isolated`)."""
        found = self._table.get(kind)
        return asked or (found is not None and found[0].ISOLATED)

    def resolve(self, kind: str) -> Callable[[dict[str, Any], JobContext], Any]:
        """The function that runs `kind` on its wire arguments, imported here (in the
        trusted loop) so that a job's own process never imports deepphoenix code."""
        found = self._table.get(kind)
        if found is not None:
            record, load = found
            function = self._loaded.get(kind)
            if function is None:
                function = self._loaded[kind] = load()
            run = function
            return lambda args, ctx: run(record.from_dict(args), ctx)
        if not is_allowed(kind, self._extra):
            raise PermissionError(f"job {kind!r} is not an allowed deepphoenix job")
        module_name, _, attr = kind.partition(":")
        extra = getattr(importlib.import_module(module_name), attr)
        if not callable(extra):
            raise TypeError(f"job {kind!r} is not callable")
        return extra

    def call(self, kind: str, args: dict[str, Any], ctx: JobContext) -> Any:
        return self.resolve(kind)(args, ctx)


def _python_threads() -> set[int]:
    return set(sys._current_frames())


def _parent_gone(lifeline: int | None, parent: int) -> bool:
    """Whether the parent has died: the lifeline (a pipe only the parent holds open) reads
    as closed, or we were re-parented. Waits up to 50 ms."""
    if lifeline is None:
        time.sleep(0.05)
        return os.getppid() != parent
    readable, _, _ = select.select([lifeline], [], [], 0.05)
    return bool(readable) or os.getppid() != parent


def _supervise(worker: int, lifeline: int | None) -> NoReturn:
    """Reap everything below us until the worker ends (or our parent does), then kill what
    is left and end as the worker did. In a PID namespace we are its init (PID 1): a
    candidate cannot signal us, and our end is the end of every process in it."""
    parent = os.getppid()
    workspace = Path.cwd()  # the parent started us in the worker's own temporary directory
    orphaned = False
    status = 0
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == worker:
            break
        if pid == 0 and _parent_gone(lifeline, parent):  # so does everything below us
            status, orphaned = 1 << 8, True
            break
    kill_tree([os.getpid()], include_roots=False)
    # Nobody is left to remove the workspace when the parent was killed: we do.
    if (orphaned or os.getppid() != parent) and workspace.name.startswith("deepphoenix-"):
        shutil.rmtree(workspace, ignore_errors=True)
    if os.WIFSIGNALED(status):
        if os.getpid() != 1:  # a namespace's init cannot die of a signal it sends itself
            # SIGKILL and SIGSTOP cannot be given a disposition: theirs is the default.
            with contextlib.suppress(OSError, ValueError):
                signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
            os.kill(os.getpid(), os.WTERMSIG(status))
        os._exit(128 + os.WTERMSIG(status))  # the shell's (and bwrap's) convention
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def _failure_reply(exc: BaseException) -> dict[str, Any]:
    error, trace = failure_text(exc)
    return {"type": "result", "ok": False, "kind": failure_kind(exc), "error": error,
            "traceback": trace}


def _run(function: Callable[[dict[str, Any], JobContext], Any], args: dict[str, Any],
         ctx: JobContext) -> dict[str, Any]:
    """The result message of one job: its value, or its failure (never raises)."""
    try:
        return {"type": "result", "ok": True, "value": function(args, ctx)}
    except BaseException as exc:  # a job's failure is reported, never fatal
        return _failure_reply(exc)


def _job_process(function: Callable[[dict[str, Any], JobContext], Any],
                 args: dict[str, Any], context: JobContext, channel: _Channel,
                 jobs_in: IO[bytes], report: int) -> NoReturn:
    """In the process forked for one job: forget the channel, run the job, report its
    value over `report` (plain JSON: the loop checks, signs and forwards it) and end."""
    try:
        channel.forget()
        with contextlib.suppress(OSError):
            jobs_in.close()
        _set_dumpable(True)  # its own /proc files (clear_refs, peak memory) are its own
        sender = _PipeSender(report)
        ctx = JobContext(sender.send, context.workspace, context.requested_device)
        ctx.state, ctx.job_id = context.state, context.job_id
        loaded = set(sys.modules)
        reply = _run(function, args, ctx)
        # The modules the job imported, so that the loop can import the trusted ones for
        # the next job (a lazily imported model class costs seconds in every fresh process).
        reply["modules"] = sorted(set(sys.modules) - loaded)[:_MAX_WARMED]
        try:
            sender.send(reply)
        except (TypeError, ValueError, ProtocolError) as exc:  # JSON cannot carry it
            error, trace = failure_text(exc)
            sender.send({"type": "result", "ok": False, "kind": "exception",
                         "error": f"the job's value cannot be sent: {error}",
                         "traceback": trace})
    finally:
        os._exit(0)


def _warm(names: Any, packages: frozenset[str]) -> None:
    """Import in the loop what the last job process imported, where that is a module of a
    package the loop has already imported on the parent's word (`packages`: its preload
    and deepphoenix) and not one that starts threads or processes: the next job starts
    with them loaded. Names only ever come from a job process, so each
    is checked here; one that does not import is skipped."""
    if not isinstance(names, list):
        return
    before = threading.active_count()
    for name in names[:_MAX_WARMED]:
        if not isinstance(name, str) or name in sys.modules:
            continue
        if name.partition(".")[0] not in packages or name.startswith(_NOT_WARMED):
            continue
        with contextlib.suppress(Exception):
            importlib.import_module(name)
        if threading.active_count() != before:  # a module started a thread: stop here
            return


def _checked(message: Any) -> dict[str, Any]:
    """A job process's result message, as the loop forwards it: only the fields a result
    has, each of its type; anything else is the job's failure."""
    if not isinstance(message, dict) or message.get("type") != "result":
        raise ProtocolError("a message that is not a result")
    if message.get("ok") is True:
        return {"type": "result", "ok": True, "value": message.get("value")}
    kind = message.get("kind")
    return {"type": "result", "ok": False,
            "kind": kind if kind in _FAILURE_KINDS else "exception",
            "error": str(message.get("error", ""))[:2000],
            "traceback": str(message.get("traceback", ""))[-8000:]}


def _died(status: int) -> dict[str, Any]:
    if os.WIFSIGNALED(status):
        try:
            name = signal.Signals(os.WTERMSIG(status)).name
        except ValueError:
            name = str(os.WTERMSIG(status))
        error = f"the job's process was killed by {name}"
    else:
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
        error = f"the job's process exited with code {code} before it reported"
    return {"type": "result", "ok": False, "kind": "died", "error": error, "traceback": ""}


def _run_isolated(function: Callable[[dict[str, Any], JobContext], Any],
                  args: dict[str, Any], context: JobContext, channel: _Channel,
                  jobs_in: IO[bytes]) -> tuple[dict[str, Any], Any]:
    """Run one job in a process forked for it; forward its progress; its result, and the
    modules it says it imported."""
    read, write = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(read)
        _job_process(function, args, context, channel, jobs_in, write)
    os.close(write)
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except (OSError, AttributeError):
        pidfd = None
    reader = FrameReader(read)
    result: dict[str, Any] | None = None
    modules: Any = None
    try:
        while True:
            frame = reader.read(None, pidfd)
            if frame is None:
                break
            message = json.loads(frame.decode("utf-8"))
            if isinstance(message, dict) and message.get("type") == "progress":
                channel.send({k: v for k, v in message.items() if k not in ("id", "seq")})
            else:
                result = _checked(message)  # the last one the process sent stands
                modules = message.get("modules")
    except (ProtocolError, ValueError, OSError) as exc:
        result = {"type": "result", "ok": False, "kind": "exception",
                  "error": f"forged or malformed reply from the job's process: {exc}"[:2000],
                  "traceback": ""}
    finally:
        os.close(read)
        if pidfd is not None:
            os.close(pidfd)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # it reported and ended, or it is done for
        _, status = os.waitpid(pid, 0)
    return (result if result is not None else _died(status)), modules


def _clear(folder: Path, keep: tuple[str, ...] = ()) -> None:
    """Remove everything in `folder` but the names `keep` (folders a job made unreadable
    to itself included: their owner can always make them readable again)."""

    def retry(function: Any, path: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(path), 0o700)
            os.chmod(path, 0o700)
            function(path)

    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if entry.name in keep:
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                os.chmod(entry.path, 0o700)
                shutil.rmtree(entry.path, onerror=retry)
            else:
                os.unlink(entry.path)


def _clean_after(workspace: Path, scratch: list[str]) -> None:
    """After a job in its own process: nothing it wrote is left for the next job (a module
    planted for a later import, a filled /tmp): the workspace is emptied but for the log
    and the home and temporary folders (emptied too), and so is the sandbox's own /tmp
    and /dev/shm."""
    _clear(workspace, keep=("worker.log", "worker.log.1", ".home", ".tmp"))
    for folder in (workspace / ".home", workspace / ".tmp", *map(Path, scratch)):
        _clear(folder)


def serve(table: JobTable) -> None:
    """Be a worker that runs the jobs of `table` (and the settings' allowed extras)."""
    settings = json.loads(os.environ.get("DEEPPHOENIX_WORKER", "{}"))
    # ``python -m`` put the workspace first on the import path: a file a job leaves there
    # must never be imported by a later one.
    sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != os.getcwd()]
    channel_fds = (int(settings["jobs_fd"]), int(settings["results_fd"]))
    lifeline = settings.get("lifeline_fd")
    isolation: dict[str, Any] = {"supervisor": become_subreaper()}
    user = settings.get("user")
    if user:
        try:
            isolation["user"] = _become(int(user[0]), int(user[1]))
        except (OSError, ValueError, TypeError) as exc:
            print(f"deepphoenix worker: cannot leave root for uid {user[0]}: {exc}",
                  file=sys.stderr, flush=True)
            os._exit(1)
    else:
        uid = os.getuid()
        isolation["user"] = f"uid {uid}" + (" (root)" if uid == 0 else " (not root)")
    worker = os.fork()
    if worker:
        for fd in channel_fds:
            os.close(fd)
        _set_dumpable(False)  # no process of our user can read or trace the supervisor
        _supervise(worker, None if lifeline is None else int(lifeline))
    if lifeline is not None:
        os.close(int(lifeline))
    os.setsid()  # the worker proper: its own session and process group
    # Namespaces first: unshare refuses a process that already has threads.
    isolation["network"] = (_isolate_network() if settings.get("isolate_network", True)
                            else "none (not asked)")
    isolation["subreaper"] = become_subreaper()
    # After the namespace (a non-dumpable process could not write its own uid map): no
    # job process can open the loop's descriptors or read its memory.
    _set_dumpable(False)
    _limit_files(settings.get("file_limit"))
    isolation["file_limit"] = settings.get("file_limit")
    jobs_in = os.fdopen(_hide(channel_fds[0]), "rb")
    channel = _Channel(_hide(channel_fds[1]))
    _watch_parent()
    device = settings.get("device", "auto")
    limited = False
    if device != "auto":
        limited = _limit_memory(settings.get("memory_limit"))
    _block_network()
    isolation["audit_hook"] = True
    for module in settings.get("preload", []):
        importlib.import_module(module)
    if device == "auto" and not _cuda_available():
        limited = _limit_memory(settings.get("memory_limit"))  # "auto" without CUDA
    isolation["memory_limit"] = settings.get("memory_limit") if limited else None
    threads = settings.get("threads") or 0
    if threads and "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)
    # What is loaded now lives as long as the worker: leave it out of the collections
    # after every job (with torch and transformers loaded, a full collection walks some
    # 230,000 objects: tens to hundreds of milliseconds per job).
    gc.freeze()
    jobs = _Jobs(table, frozenset(settings.get("extra_jobs", ())))
    warmable = frozenset({*settings.get("preload", []), "deepphoenix"})
    workspace = Path.cwd()
    context = JobContext(channel.send, workspace, device)
    hello = read_message(jobs_in)
    if hello is None or hello.get("type") != "hello":
        return
    channel.begin(bytes.fromhex(str(hello.pop("key"))), 0)
    channel.send({"type": "ready", "isolation": isolation})
    while True:
        message = read_message(jobs_in)
        if message is None or message.get("type") == "exit":
            break
        known_threads = _python_threads()
        context.job_id = int(message.get("id", 0))
        channel.begin(bytes.fromhex(str(message.pop("key"))), context.job_id)
        kind, args = str(message["kind"]), message.get("args", {})
        isolated = jobs.isolated(kind, bool(message.get("isolated")))
        del message
        began = time.perf_counter()
        modules = None
        try:
            function = jobs.resolve(kind)
        except BaseException as exc:  # refused or not importable: the job's failure
            reply = _failure_reply(exc)
        else:
            if isolated:
                reply, modules = _run_isolated(function, args, context, channel, jobs_in)
            else:
                reply = _run(function, args, context)
        reply["seconds"] = time.perf_counter() - began
        reply["leftovers"] = kill_tree([os.getpid()], include_roots=False)
        # A thread the job started and left running could read the next job's key from
        # the job channel: the parent retires a worker that reports one. (Threads without
        # a Python frame, torch's and OpenMP's, are not counted.)
        reply["stray_threads"] = len(_python_threads() - known_threads)
        os.chdir(workspace)  # a job that changed directory does not move the next one
        if not isolated:
            gc.collect()
        try:
            channel.send(reply)
        except (TypeError, ValueError, ProtocolError) as exc:  # JSON cannot carry it
            error, trace = failure_text(exc)
            channel.send({"type": "result", "ok": False, "kind": "exception",
                          "error": f"the job's value cannot be sent: {error}",
                          "traceback": trace, "seconds": reply["seconds"]})
        if isolated:  # after the reply (the parent goes on meanwhile), before the next job
            _clean_after(workspace, list(settings.get("scratch", [])))
            if modules:
                _warm(modules, warmable)
                gc.freeze()
