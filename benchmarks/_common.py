"""What every benchmark prints first: the machine, the packages and the date, so a figure
copied into RESULTS.md carries where it came from."""

from __future__ import annotations

import os
import platform
import time
from importlib import metadata

_PACKAGES = ("libcst", "torch", "transformers", "tokenizers")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> str:
    try:
        return f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError):
        return "? GiB"


def machine_header(note: str = "") -> str:
    """One line: CPU, cores, memory, Python, package versions, date (and `note`)."""
    versions = []
    for name in _PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    line = (f"# machine: {_cpu_model()} ({platform.machine()}), {os.cpu_count()} cores, "
            f"{_memory_gib()}, Python {platform.python_version()}, {', '.join(versions)}, "
            f"{time.strftime('%Y-%m-%d')}")
    return f"{line}; {note}" if note else line
