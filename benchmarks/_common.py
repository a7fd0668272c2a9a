"""What every benchmark prints first: the machine, the packages and the date, so a figure
copied into RESULTS.md carries where it came from; and how a benchmark runs one
`deepphoenix run`."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

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


def run_deepphoenix(command: list[str], run_dir: Path) -> tuple[dict[str, Any], float]:
    """Run `command` (a `deepphoenix run` into `run_dir`) offline, to the end: the run's
    summary.json and its wall seconds. A run that fails ends the benchmark with the tail
    of its stderr."""
    began = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=False)
    wall = time.monotonic() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): "
                         f"{done.stderr.strip()[-400:]}")
    summary: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    return summary, wall


def read_results(path: Path) -> list[dict[str, Any]]:
    """The results a benchmark appended to `path` (JSON lines; none when it is missing)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_result(path: Path, result: dict[str, Any]) -> None:
    """Append one finished result to `path`, so an interrupted benchmark continues."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(result) + "\n")


def by_preset(results: list[dict[str, Any]]
              ) -> Iterator[tuple[str, list[dict[str, Any]], list[int], float]]:
    """The results of each preset, in the order first seen: (preset, its runs, their seeds
    sorted, the direction's sign: 1 when lower is better, -1 when higher is)."""
    for preset in dict.fromkeys(r["preset"] for r in results):
        runs = [r for r in results if r["preset"] == preset]
        sign = -1.0 if runs[0]["direction"] == "maximize" else 1.0
        yield preset, runs, sorted({r["seed"] for r in runs}), sign


def best_by(curve: list[list[float]], spent: float) -> float | None:
    """The best so far on a (spent, best) curve once `spent` (seconds, samples) is used up;
    None when nothing had arrived by then."""
    found = None
    for at, best in curve:
        if at > spent:
            break
        found = best
    return found


def reach(curve: list[list[float]], target: float, sign: float) -> float | None:
    """What a (spent, best) curve had spent when its best first reached `target` (`sign`:
    1 when lower is better, -1 when higher is); None if it never did."""
    for at, best in curve:
        if sign * best <= sign * target:
            return at
    return None


def fmt(value: float | None, digits: int = 3) -> str:
    """`digits` decimals; a score below 0.01 (a quine's relative error) in significant
    digits, so that 8e-07 and 0.004 do not both print as 0.000."""
    if value is None:
        return "-"
    if value != 0 and abs(value) < 0.01:
        return f"{value:.{max(digits - 1, 1)}g}"
    return f"{value:.{digits}f}"


def end_table(rows: list[dict[str, Any]], json_path: Path | None) -> None:
    """After a benchmark's table: the load average at the end, and the rows as JSON."""
    load = os.getloadavg()
    print(f"# load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end")
    if json_path is not None:
        json_path.write_text(json.dumps(rows, indent=2))
