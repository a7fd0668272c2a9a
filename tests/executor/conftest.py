"""A real Ray head on this machine for the ray executor's tests: ``ray start --head`` in its
own process group (so the fixture stops exactly the processes it started), 2 CPUs, its
workers importing this checkout's deepphoenix."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Token authentication with a token of these tests' own (the head listens beyond loopback).
# Set before anything imports ray: Ray reads its authentication mode once per process.
os.environ.setdefault("RAY_AUTH_MODE", "token")
if os.environ["RAY_AUTH_MODE"] == "token":
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _ray_cli() -> str:
    found = Path(sys.executable).with_name("ray")
    return str(found) if found.exists() else (shutil.which("ray") or "ray")


@pytest.fixture(scope="session")
def ray_head() -> Iterator[str]:
    """The address of a Ray head started for these tests; stopped (its whole process
    group) at the end."""
    pytest.importorskip("ray", reason="the ray executor needs Ray: pip install "
                        "'deepphoenix[ray]'")
    port = _free_port()
    temp = Path(tempfile.mkdtemp(prefix="dpray-", dir="/tmp"))  # Ray's socket paths are short
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen(
        [_ray_cli(), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
         "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats",
         "--node-ip-address=127.0.0.1", f"--temp-dir={temp}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _answers(port):
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start --head did not come up (exit {head.poll()})")
            time.sleep(0.5)
        time.sleep(2)  # the raylet registers just after the GCS answers
        yield f"127.0.0.1:{port}"
    finally:
        _stop_group(head)
        shutil.rmtree(temp, ignore_errors=True)


def _stop_group(head: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(head.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        head.wait(timeout=5)
    # What is left of the group (ray start drains for up to 30 s on SIGTERM, and its
    # children outlive it): only processes of this group, which this fixture started.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(head.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        head.wait(timeout=15)
