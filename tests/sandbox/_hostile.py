"""Hostile candidates, as jobs: each plays one way a candidate's code can attack or abuse
the worker it runs in. The containment tests run them in real workers (allowed there with
`WorkerSettings(extra_jobs=...)`); nothing here ever addresses anything but 127.0.0.1."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Any

from deepphoenix.sandbox._child import JobContext

_MAX_FD = 1024


def _frames(job_id: int) -> list[bytes]:
    """A well-formed result frame for job `job_id`, in every framing a forger might try:
    the bare JSON of the old protocol and the tagged one of the new (with a made-up key)."""
    forged = {"type": "result", "id": job_id, "seq": 0, "ok": True, "seconds": 0.1,
              "value": {"status": "scored", "metrics": {"score": 0.0123}}}
    body = json.dumps(forged).encode()
    tag = hmac.new(b"guessed key", body, hashlib.sha256).digest()
    return [struct.pack(">I", len(body)) + body,
            struct.pack(">I", len(tag) + len(body)) + tag + body]


def _write_everywhere(data: bytes) -> int:
    """Write `data` to every file descriptor that takes it; how many did."""
    written = 0
    for fd in range(_MAX_FD):
        try:
            os.write(fd, data)
            written += 1
        except OSError:
            pass
    return written


def forge(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Write a forged result for this job to every writable descriptor, in-process (unless
    `in_process` is false) and from a child program; then return, exit the worker, or hang
    (`then`)."""
    hits = 0
    if args.get("in_process", True):
        for frame in _frames(ctx.job_id):
            hits += _write_everywhere(frame)
    script = ("import os\nfor fd in range(3, 1024):\n    try: os.write(fd, bytes.fromhex("
              f"{_frames(ctx.job_id)[1].hex()!r}))\n    except OSError: pass\n")
    subprocess.run([sys.executable, "-c", script], check=False, timeout=30)
    then = args.get("then", "return")
    if then == "exit":
        os._exit(0)
    if then == "hang":
        time.sleep(600)
    return {"status": "honest", "descriptors": hits}


def torn(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Start a frame on every descriptor (a header that promises 1000 bytes) and stop."""
    _write_everywhere(struct.pack(">I", 1000) + b"{")
    if args.get("then") == "hang":
        time.sleep(600)
    return {"status": "honest"}


def garbage(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Random bytes (deterministic), and an oversized header, to every descriptor."""
    _write_everywhere(bytes(range(256)) * 4)
    _write_everywhere(struct.pack(">I", 2**31))
    return {"status": "honest"}


def _daemon(report: int, children: int) -> None:
    """In a forked child: leave the session, ignore SIGTERM, fork `children` more, report
    every pid over `report`, and sleep (holding a little memory)."""
    os.setsid()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    for _ in range(children):
        if os.fork() == 0:
            break
    os.write(report, struct.pack(">i", os.getpid()))
    os.close(report)
    ballast = bytearray(8 * 2**20)  # noqa: F841 - an escapee holds memory
    while True:
        time.sleep(60)


def escape(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Start `count` processes that fork twice (so the first parent exits and they are
    orphans), call ``setsid`` and ignore SIGTERM, each with `children` children of its own;
    plus one ``subprocess`` in a new session that ignores SIGTERM. Report their pids, then
    `then`: return, sleep past the timeout, or kill the worker."""
    count, children = int(args.get("count", 3)), int(args.get("children", 1))
    read, write = os.pipe()
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            os.close(read)
            if os.fork() == 0:
                _daemon(write, children)
            os._exit(0)
        os.waitpid(pid, 0)
    sub = subprocess.Popen(
        [sys.executable, "-c", "import signal, time, os, struct, sys\n"
         "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
         f"os.write({write}, struct.pack('>i', os.getpid()))\n"
         "time.sleep(600)\n"],
        start_new_session=True, pass_fds=(write,))
    os.close(write)
    expected = count * (children + 1) + 1
    pids: list[int] = []
    deadline = time.monotonic() + 20
    while len(pids) < expected and time.monotonic() < deadline:
        data = os.read(read, 4 * expected)
        if not data:
            break
        pids += [p for (p,) in struct.iter_unpack(">i", data)]
    os.close(read)
    ctx.progress(escapees=pids, subprocess=sub.pid)
    then = args.get("then", "return")
    if then in ("return", "die"):
        # The test looks the reported processes up on the host while they live; a worker
        # without torch ends and kills them faster than the parent can read /proc.
        time.sleep(2)
    if then == "sleep":
        time.sleep(600)
    if then == "die":
        os._exit(7)
    return {"escapees": pids}


def lookups(args: dict[str, Any], ctx: JobContext) -> dict[str, str]:
    """Try every name lookup and non-Unix socket call a candidate can reach from Python;
    say for each what happened ("refused: ..." or "allowed")."""
    outcome: dict[str, str] = {}

    def attempt(name: str, call: Any) -> None:
        try:
            call()
            outcome[name] = "allowed"
        except PermissionError as exc:
            outcome[name] = f"refused: {exc}"
        except OSError as exc:
            outcome[name] = f"failed: {exc}"

    attempt("gethostbyname", lambda: socket.gethostbyname("localhost"))
    attempt("gethostbyname_ex", lambda: socket.gethostbyname_ex("localhost"))
    attempt("gethostbyaddr", lambda: socket.gethostbyaddr("127.0.0.1"))
    attempt("getnameinfo", lambda: socket.getnameinfo(("127.0.0.1", 80), 0))
    attempt("getaddrinfo", lambda: socket.getaddrinfo("localhost", 80))
    attempt("create_connection", lambda: socket.create_connection(("127.0.0.1", 9), 1))

    def udp_send() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"x", ("127.0.0.1", 9))

    def udp_sendmsg() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendmsg([b"x"], [], 0, ("127.0.0.1", 9))

    def tcp_bind() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))

    attempt("sendto", udp_send)
    attempt("sendmsg", udp_sendmsg)
    attempt("bind", tcp_bind)

    def unix_pair() -> None:
        a, b = socket.socketpair()
        with a, b:
            a.sendall(b"x")
            assert b.recv(1) == b"x"

    attempt("unix socketpair", unix_pair)
    return outcome


def child_connect(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """From a child program (no audit hook there), connect over TCP to 127.0.0.1:`port` and
    send a UDP datagram to it."""
    script = (
        "import socket, sys\n"
        f"port = {int(args['port'])}\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', port), 2).close()\n"
        "    print('connected')\n"
        "except OSError as exc:\n"
        "    print('refused', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=30, check=False)
    return {"output": out.stdout.strip(), "stderr": out.stderr[-500:]}


def spam(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Print `megabytes` of text, half through Python's stdout and half from a child
    program straight to the inherited stderr."""
    total = int(args.get("megabytes", 50)) * 2**20
    line = "spam " * 20 + "\n"
    block = line * (2**20 // len(line))
    for _ in range(total // 2 // len(block)):
        sys.stdout.write(block)
    sys.stdout.flush()
    script = ("import os\nblock = b'x' * 2**20\n"
              f"for _ in range({total // 2 // 2**20}):\n    os.write(2, block)\n")
    subprocess.run([sys.executable, "-c", script], check=False, timeout=120)
    sys.stderr.write("the last line of the spam\n")
    return {"printed": total}


def limits(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """The address-space limit here and in a child program."""
    out = subprocess.run(
        [sys.executable, "-c",
         "import resource; print(resource.getrlimit(resource.RLIMIT_AS)[0])"],
        capture_output=True, text=True, timeout=30, check=False)
    return {"here": resource.getrlimit(resource.RLIMIT_AS)[0],
            "child": int(out.stdout.strip() or -2)}


def hog(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Allocate `bytes` in one piece and touch it."""
    block = bytearray(int(args["bytes"]))
    block[:: 2**12] = b"x" * len(block[:: 2**12])
    return {"allocated": len(block)}


def stray_thread(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Leave a thread behind that reads every readable pipe in the worker (the job channel
    among them) and answers whatever it steals with a forged result."""

    def thief() -> None:
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            try:
                if os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:"):
                    os.set_blocking(fd, False)
                    stolen = os.read(fd, 2**16)
                    if stolen:
                        job = json.loads(stolen[4:])
                        for frame in _frames(int(job.get("id", 0))):
                            _write_everywhere(frame)
            except (OSError, ValueError):
                pass
        time.sleep(0.05)

    def loop() -> None:
        while True:
            thief()

    threading.Thread(target=loop, daemon=True).start()
    return {"status": "honest"}


def pid(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    return {"pid": os.getpid(), "status": "honest"}


def unsendable(args: dict[str, Any], ctx: JobContext) -> object:
    """A value JSON cannot carry."""
    return {"status": "honest", "value": object()}


def snoop(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """What a candidate can see and touch of the host: every process in /proc (and the
    environment and working directory of each), a run database found through them, the
    user's home (the real one, from the password database), /tmp and other workers'
    workspaces, a host Unix socket, and the files named in `args`."""
    import glob
    import pwd

    found: dict[str, Any] = {"pids": 0, "environ_read": 0, "secrets": [], "databases": [],
                             "written": [], "read": [], "socket": "absent"}
    marker = str(args.get("marker", ""))
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        found["pids"] += 1
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                environ = f.read()
            found["environ_read"] += 1
            if marker and marker.encode() in environ:
                found["secrets"].append(name)
        except OSError:
            pass
        try:  # a run directory on a command line, or as a working directory
            with open(f"/proc/{name}/cmdline", "rb") as f:
                words = f.read().decode("utf-8", "replace").split("\0")
            words.append(os.readlink(f"/proc/{name}/cwd"))
            for word in words:
                if word.startswith("/") and os.path.isfile(os.path.join(word, "run.sqlite")):
                    found["databases"].append(os.path.join(word, "run.sqlite"))
        except OSError:
            pass
    for db in [*found["databases"], *args.get("databases", [])]:
        try:
            with open(db, "r+b") as f:
                f.seek(0, os.SEEK_END)
                f.write(b"")
            found["written"].append(db)
        except OSError:
            pass
    home = pwd.getpwuid(os.getuid()).pw_dir
    for folder in (home, "/tmp", "/var/tmp", "/dev/shm", *args.get("write_to", [])):
        target = os.path.join(folder, f"hostile-write-{os.getpid()}")
        try:
            with open(target, "w") as f:
                f.write("x")
            found["written"].append(target)
        except OSError:
            pass
    for path in args.get("read", []):
        try:
            with open(path) as f:
                f.read()
            found["read"].append(path)
        except OSError:
            pass
    found["listing"] = {}
    for folder in (home, *args.get("list", [])):
        with contextlib.suppress(OSError):
            found["listing"][folder] = sorted(os.listdir(folder))
    found["workspaces"] = [w for w in glob.glob("/tmp/deepphoenix-*")
                           if os.path.realpath(w) != os.path.realpath(str(ctx.workspace))]
    if args.get("socket"):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                s.connect(str(args["socket"]))
                s.sendall(b"hello from a candidate\n")
            found["socket"] = "sent"
        except OSError as exc:
            found["socket"] = f"refused ({exc.strerror})"
    return found


def kill_supervisor(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Start a program in its own session that ignores SIGTERM and sleeps (its command line
    carries `marker`), then SIGKILL the worker's supervisor and the worker itself."""
    script = ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              f"marker = {str(args['marker'])!r}\ntime.sleep(600)\n")
    subprocess.Popen([sys.executable, "-c", script, str(args["marker"])],
                     start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    os.kill(os.getppid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
    return {"status": "honest"}


# -- the second pass (issue 29): each opens for writing and closes, never writes ----------
def _open_for_writing(path: str) -> str:
    """"opened" if `path` opens for writing (closed at once, nothing written), else why
    not."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOCTTY)
    except OSError as exc:
        return f"refused ({exc.strerror})"
    os.close(fd)
    return "opened"


def privileges(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Who the candidate is, and whether host-wide settings (sysctls) and a file of the
    host's root that the job can see (`args["root_file"]`) open for writing."""
    paths = ["/proc/sys/kernel/core_pattern", "/proc/sys/vm/drop_caches",
             "/proc/sys/kernel/hostname", *args.get("files", [])]
    return {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
            "groups": os.getgroups(),
            "opened": {p: _open_for_writing(p) for p in paths}}


def devices(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """The device nodes the candidate can see (block devices above all), and whether the
    host's dangerous ones open for reading and writing (closed at once)."""
    import stat

    block, character = [], []
    for folder, dirs, files in os.walk("/dev"):
        for name in [*files, *dirs]:
            path = os.path.join(folder, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue
            if stat.S_ISBLK(mode):
                block.append(path)
            elif stat.S_ISCHR(mode):
                character.append(path)
    opened = {}
    for path in ("/dev/kvm", "/dev/fuse", "/dev/loop-control", "/dev/loop0", "/dev/mem",
                 *args.get("files", [])):
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        except OSError as exc:
            opened[path] = f"refused ({exc.strerror})"
            continue
        os.close(fd)
        opened[path] = "opened"
    return {"block": sorted(block), "character": sorted(character), "opened": opened}


def fill(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Write `megabytes` into `files` files under `folder` (a path; ``WORKSPACE`` for the
    job's own workspace), a megabyte at a time; how much went in and why it stopped; then
    sleep `then_sleep` seconds (for the parent to look)."""
    folder = str(args["folder"]).replace("WORKSPACE", str(ctx.workspace))
    files, total = int(args.get("files", 1)), int(args["megabytes"])
    block = b"x" * 2**20
    written, error = 0, ""
    try:
        for index in range(files):
            with open(os.path.join(folder, f"fill-{os.getpid()}-{index}"), "wb") as f:
                for _ in range(total // files):
                    f.write(block)
                    f.flush()
                    written += len(block)
    except OSError as exc:
        error = f"{type(exc).__name__}: [Errno {exc.errno}] {exc.strerror}"
    time.sleep(float(args.get("then_sleep", 0)))
    return {"written": written, "error": error}


def kill_self(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """SIGKILL the process the job runs in."""
    os.kill(os.getpid(), signal.SIGKILL)
    return {"status": "honest"}
