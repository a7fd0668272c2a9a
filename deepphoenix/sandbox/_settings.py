"""How a sandboxed worker is set up: `WorkerSettings`, its memory, scratch and disk
budgets, the scrubbed environment it starts in, and the one-line summaries of what a
worker gets (`sandbox_line`, before any starts) and reported (`isolation_summary`).
The worker process itself is `_worker.Worker`; see docs/sandbox.md for the threat model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepphoenix.sandbox._confine import WORKER_ID, confinement, drops_root
from deepphoenix.sandbox._log import DEFAULT_LOG_CAP

__all__ = ["DEFAULT_DISK_LIMIT", "WorkerSettings", "default_memory_limit",
           "isolation_summary", "sandbox_line", "scratch_size", "scrubbed_env"]

_PASS_THROUGH = ("PATH", "LANG", "LC_ALL", "TZ", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH",
                 "VIRTUAL_ENV", "PYTHONPATH", "SYSTEMROOT")
_RAM_SHARE = 0.8  # of physical memory, split between the workers that run at once
# A confined worker's /tmp and /dev/shm are tmpfs of this share of its memory budget each;
# its address-space limit is what the budget leaves (docs/sandbox.md, Memory).
_SCRATCH_SHARE = 16
_MIN_SCRATCH = 16 * 2**20
DEFAULT_DISK_LIMIT = 10 * 2**30  # bytes a worker's workspace may hold, and a file's limit

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


def disk_budget(settings: WorkerSettings) -> int | None:
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
            "file_limit": disk_budget(settings),
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


def human_size(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


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
        parts.append(f"/tmp and /dev/shm {human_size(int(isolation['scratch']))} each")
    if isolation.get("disk_limit"):
        parts.append(f"disk {human_size(int(isolation['disk_limit']))} per workspace")
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
    disk = disk_budget(settings)
    return (f"sandbox: mount, PID, network namespaces ({found.describe()}); workers run as "
            f"{user}, not root; /tmp and /dev/shm {human_size(scratch_size(settings, sharing))} "
            f"each; disk {human_size(disk) if disk else 'unlimited'} per workspace")
