"""Mount, PID and network namespaces for a worker, made by bubblewrap (``bwrap``).

Why bubblewrap: it is the sandbox Flatpak is built on, maintained and packaged by every
distribution (Debian: ``bubblewrap``), and it does the delicate parts (a read-only
recursive bind, a fresh ``/proc`` for a new PID namespace, dropping capabilities, killing
the sandbox when its parent dies) in a few hundred audited lines of C. Doing the same from
Python 3.11 would take ``ctypes`` calls to ``unshare``, ``mount`` and ``mount_setattr``
and a hand-written init process: the hand-rolled tricks the issue asked us to avoid.

The sandbox a worker gets (``confine_command``):

- a filesystem of read-only binds of the system (``/usr``, ``/etc``, ``/opt``, ``/sys``,
  the ``/lib`` and ``/bin`` links), the interpreter, the virtual environment and every
  ``sys.path`` entry, plus what the settings name (``readable``, ``writable``). Nothing
  else of the host exists: not ``/home``, ``/root``, ``/tmp``, ``/run``, ``/var``, other
  workers' workspaces, the run directory, or any Unix socket in them. The worker's
  workspace is the one writable place of the host, with a fresh ``/tmp`` and
  ``/dev/shm`` of its own (tmpfs, gone with the sandbox);
- a PID namespace whose first process (PID 1) is the worker's supervisor
  (``--as-pid-1``): ``/proc`` lists only the worker's own processes, so no parent's
  environment or command line can be read; a candidate cannot stop or kill its
  supervisor (the kernel ignores such signals to a namespace's init from inside it); and
  when the supervisor ends (the worker died, or the parent did: it watches a pipe only the
  parent holds), the kernel kills every process left in the namespace;
- a network namespace with only a loopback device of its own (and new IPC and UTS
  namespaces);
- as root, no capabilities (``--cap-drop ALL``), so a candidate cannot unmount what hides
  the host.

Where bubblewrap is missing, or the kernel refuses it namespaces, `confinement` says why
in one line and workers run as before (their own network namespace where possible).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Confinement", "cgroup_layer", "confine_command", "confinement", "python_paths"]

# The system, read-only. Everything else of the host is absent from a confined worker.
_SYSTEM = ("/usr", "/etc", "/opt", "/sys", "/bin", "/sbin", "/lib", "/lib32", "/lib64",
           "/libx32")
_PROBE_TIMEOUT = 20.0


@dataclass(frozen=True, slots=True)
class Confinement:
    """Whether workers can be confined here: the bwrap program, or why not."""

    bwrap: str | None
    reason: str = ""  # why not, in a few words (empty when available)

    @property
    def available(self) -> bool:
        return self.bwrap is not None


@functools.cache
def confinement() -> Confinement:
    """Probe once per process: bubblewrap installed, and allowed to make its namespaces
    (``DEEPPHOENIX_NO_NAMESPACES=1`` turns confinement off, for debugging)."""
    if os.environ.get("DEEPPHOENIX_NO_NAMESPACES", "") not in ("", "0"):
        return Confinement(None, "turned off by DEEPPHOENIX_NO_NAMESPACES")
    program = shutil.which("bwrap")
    if program is None:
        return Confinement(None, "bubblewrap (bwrap) is not installed")
    try:
        probe = subprocess.run(
            [program, *_base_args(isolate_network=True), "--", "true"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=_PROBE_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Confinement(None, f"bwrap did not run ({exc})")
    if probe.returncode != 0:
        said = probe.stderr.decode("utf-8", "replace").strip().splitlines()
        return Confinement(None, f"the kernel refused bwrap its namespaces "
                                 f"({said[-1] if said else f'exit {probe.returncode}'})")
    return Confinement(program)


def _base_args(isolate_network: bool) -> list[str]:
    args = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--as-pid-1", "--proc", "/proc", "--dev-bind", "/dev", "/dev",
            "--tmpfs", "/dev/shm", "--tmpfs", "/tmp"]
    if isolate_network:
        args.append("--unshare-net")
    if os.geteuid() == 0:
        args += ["--cap-drop", "ALL"]
    for path in _SYSTEM:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def python_paths() -> list[str]:
    """What a worker's interpreter needs: its prefixes, the executable's directory, every
    `sys.path` entry (the virtual environment, an editable checkout, PYTHONPATH), and the
    directories of PYTHONPATH and LD_LIBRARY_PATH."""
    found = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.abspath(sys.executable)),
             os.path.dirname(os.path.realpath(sys.executable))]
    found += [os.path.abspath(p) for p in sys.path if p]
    for variable in ("PYTHONPATH", "LD_LIBRARY_PATH"):
        found += [p for p in os.environ.get(variable, "").split(os.pathsep) if p]
    import deepphoenix

    found.append(str(Path(deepphoenix.__file__).resolve().parents[1]))
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
                    writable: Iterable[str] = (), isolate_network: bool = True) -> list[str]:
    """`command` run by bwrap in the worker's sandbox: the system and Python read-only,
    `readable` read-only, `writable` and `workspace` writable, nothing else of the host.
    `hidden` (a run directory) is replaced by an empty tmpfs where Python's paths would
    show it (a project checkout on `sys.path` that holds the run directory)."""
    args = [bwrap, *_base_args(isolate_network)]
    system = [p for p in _SYSTEM if os.path.isdir(p) and not os.path.islink(p)]
    bound = [p for p in _outermost(python_paths()) if not _under(p, system)]
    for path in bound:
        args += ["--ro-bind", path, path]
    for path in _outermost(hidden):
        if _under(path, [*bound, *system]):
            args += ["--tmpfs", path]
    for path in _outermost(readable):
        args += ["--ro-bind", path, path]
    for path in _outermost([*writable, str(workspace)]):
        args += ["--bind", path, path]
    # The root itself (bwrap's tmpfs, holding the mount points) is read-only too.
    return [*args, "--remount-ro", "/", "--chdir", str(workspace), "--", *command]


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
