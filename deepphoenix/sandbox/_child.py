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
import gc
import importlib
import json
import os
import select
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, NoReturn

from deepphoenix.sandbox._harden import (
    become,
    block_network,
    cuda_available,
    hide,
    isolate_network,
    limit_files,
    limit_memory,
    set_dumpable,
    watch_parent,
)
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
            return "cuda" if cuda_available() else "cpu"
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


def _send_reply(send: Callable[[dict[str, Any]], None], reply: dict[str, Any],
                **extra: Any) -> None:
    """Send a job's reply; one JSON cannot carry is replaced by a failure that says so."""
    try:
        send(reply)
    except (TypeError, ValueError, ProtocolError) as exc:
        error, trace = failure_text(exc)
        send({"type": "result", "ok": False, "kind": "exception",
              "error": f"the job's value cannot be sent: {error}", "traceback": trace,
              **extra})


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
        set_dumpable(True)  # its own /proc files (clear_refs, peak memory) are its own
        sender = _PipeSender(report)
        ctx = JobContext(sender.send, context.workspace, context.requested_device)
        ctx.state, ctx.job_id = context.state, context.job_id
        loaded = set(sys.modules)
        reply = _run(function, args, ctx)
        # The modules the job imported, so that the loop can import the trusted ones for
        # the next job (a lazily imported model class costs seconds in every fresh process).
        reply["modules"] = sorted(set(sys.modules) - loaded)[:_MAX_WARMED]
        _send_reply(sender.send, reply)
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


def _fork_supervisor(settings: dict[str, Any], isolation: dict[str, Any]) -> None:
    """Leave root where asked, then fork: the parent stays as the supervisor (it never
    returns), the child goes on as the worker proper, in a session of its own."""
    channel_fds = (int(settings["jobs_fd"]), int(settings["results_fd"]))
    lifeline = settings.get("lifeline_fd")
    isolation["supervisor"] = become_subreaper()
    user = settings.get("user")
    if user:
        try:
            isolation["user"] = become(int(user[0]), int(user[1]))
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
        set_dumpable(False)  # no process of our user can read or trace the supervisor
        _supervise(worker, None if lifeline is None else int(lifeline))
    if lifeline is not None:
        os.close(int(lifeline))
    os.setsid()  # the worker proper: its own session and process group


def _harden(settings: dict[str, Any], isolation: dict[str, Any]) -> tuple[IO[bytes], _Channel]:
    """The worker proper's start-up, in the order the kernel allows: namespaces, limits,
    hidden channels, the audit hook, the preloaded modules, memory limit, threads. Returns
    the job input and the result channel."""
    # Namespaces first: unshare refuses a process that already has threads.
    isolation["network"] = (isolate_network() if settings.get("isolate_network", True)
                            else "none (not asked)")
    isolation["subreaper"] = become_subreaper()
    # After the namespace (a non-dumpable process could not write its own uid map): no
    # job process can open the loop's descriptors or read its memory.
    set_dumpable(False)
    limit_files(settings.get("file_limit"))
    isolation["file_limit"] = settings.get("file_limit")
    jobs_in = os.fdopen(hide(int(settings["jobs_fd"])), "rb")
    channel = _Channel(hide(int(settings["results_fd"])))
    watch_parent()
    device = settings.get("device", "auto")
    limited = False
    if device != "auto":
        limited = limit_memory(settings.get("memory_limit"))
    block_network()
    isolation["audit_hook"] = True
    for module in settings.get("preload", []):
        importlib.import_module(module)
    if device == "auto" and not cuda_available():
        limited = limit_memory(settings.get("memory_limit"))  # "auto" without CUDA
    isolation["memory_limit"] = settings.get("memory_limit") if limited else None
    threads = settings.get("threads") or 0
    if threads and "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)
    # What is loaded now lives as long as the worker: leave it out of the collections
    # after every job (with torch and transformers loaded, a full collection walks some
    # 230,000 objects: tens to hundreds of milliseconds per job).
    gc.freeze()
    return jobs_in, channel


def serve(table: JobTable) -> None:
    """Be a worker that runs the jobs of `table` (and the settings' allowed extras)."""
    settings = json.loads(os.environ.get("DEEPPHOENIX_WORKER", "{}"))
    # ``python -m`` put the workspace first on the import path: a file a job leaves there
    # must never be imported by a later one.
    sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != os.getcwd()]
    isolation: dict[str, Any] = {}
    _fork_supervisor(settings, isolation)
    jobs_in, channel = _harden(settings, isolation)
    loop = _JobLoop(table, settings, channel, jobs_in)
    hello = read_message(jobs_in)
    if hello is None or hello.get("type") != "hello":
        return
    channel.begin(bytes.fromhex(str(hello.pop("key"))), 0)
    channel.send({"type": "ready", "isolation": isolation})
    while True:
        message = read_message(jobs_in)
        if message is None or message.get("type") == "exit":
            break
        loop.run_one(message)


class _JobLoop:
    """The trusted loop: one job message at a time, its reply signed and sent."""

    def __init__(self, table: JobTable, settings: dict[str, Any], channel: _Channel,
                 jobs_in: IO[bytes]) -> None:
        self.jobs = _Jobs(table, frozenset(settings.get("extra_jobs", ())))
        self.warmable = frozenset({*settings.get("preload", []), "deepphoenix"})
        self.scratch = list(settings.get("scratch", []))
        self.workspace = Path.cwd()
        self.channel, self.jobs_in = channel, jobs_in
        self.context = JobContext(channel.send, self.workspace,
                                  settings.get("device", "auto"))

    def run_one(self, message: dict[str, Any]) -> None:
        known_threads = _python_threads()
        context, channel = self.context, self.channel
        context.job_id = int(message.get("id", 0))
        channel.begin(bytes.fromhex(str(message.pop("key"))), context.job_id)
        kind, args = str(message["kind"]), message.get("args", {})
        isolated = self.jobs.isolated(kind, bool(message.get("isolated")))
        del message
        began = time.perf_counter()
        modules = None
        try:
            function = self.jobs.resolve(kind)
        except BaseException as exc:  # refused or not importable: the job's failure
            reply = _failure_reply(exc)
        else:
            if isolated:
                reply, modules = _run_isolated(function, args, context, channel,
                                               self.jobs_in)
            else:
                reply = _run(function, args, context)
        reply["seconds"] = time.perf_counter() - began
        reply["leftovers"] = kill_tree([os.getpid()], include_roots=False)
        # A thread the job started and left running could read the next job's key from
        # the job channel: the parent retires a worker that reports one. (Threads without
        # a Python frame, torch's and OpenMP's, are not counted.)
        reply["stray_threads"] = len(_python_threads() - known_threads)
        os.chdir(self.workspace)  # a job that changed directory does not move the next one
        if not isolated:
            gc.collect()
        _send_reply(channel.send, reply, seconds=reply["seconds"])
        if isolated:  # after the reply (the parent goes on meanwhile), before the next job
            _clean_after(self.workspace, self.scratch)
            if modules:
                _warm(modules, self.warmable)
                gc.freeze()
