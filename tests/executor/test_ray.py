"""The ray executor against a real Ray head on this machine (127.0.0.1, 2 CPUs): the same
sandbox as locally, timeouts that kill the candidate's process group on the Ray side, a
killed Ray worker that takes only its candidate, files through the object store, resource
checks, and runs whose results match the local executor's. Marked ``ray`` (minutes on
two cores): ``python -m pytest -m ray``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from deepphoenix.engine import Run, preset
from deepphoenix.executor import ExecutorError, ExecutorSettings, get_executor
from deepphoenix.sandbox import JobStatus, NamedJob, WorkerSettings, confinement
from deepphoenix.sandbox._reaper import running as _running

ray = pytest.importorskip("ray", reason="the ray executor needs Ray: pip install "
                          "'deepphoenix[ray]'")

from deepphoenix.executor._ray import RayExecutor, _Host  # noqa: E402

pytestmark = pytest.mark.ray
DIAG = "deepphoenix.sandbox._diagnostics"
ROOT = Path(__file__).resolve().parents[2]




def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


def _still_running(pid: int) -> bool:
    """Whether the process a job reported as `pid` lives: on the host, or, where workers
    have PID namespaces (the id is then the namespace's), any sandbox process with that id
    in its innermost namespace."""
    if not confinement().available:
        return _running(pid)
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        ids = next((line.split()[1:] for line in status.splitlines()
                    if line.startswith("NSpid:")), [])
        if len(ids) > 1 and ids[-1] == str(pid) and b"deepphoenix.jobs" in cmdline:
            return True
    return False


def _executor(address: str, workers: int = 1, **changes: Any) -> RayExecutor:
    bare = WorkerSettings(threads=1, preload=(), extra_jobs=(f"{DIAG}:*",))
    executor = get_executor("ray", ExecutorSettings(workers=workers, worker=bare, lane=bare,
                                                    address=address, **changes))
    assert isinstance(executor, RayExecutor)
    return executor


def test_jobs_run_in_the_same_sandbox_as_locally(ray_head: str) -> None:
    with _executor(ray_head) as executor:
        results = [r for _, r in executor.run_all(
            [(i, NamedJob(f"{DIAG}:describe", {}), 120.0) for i in range(2)])]
        assert all(r.ok for r in results), [r.error for r in results]
        first, second = (r.value for r in results)
        assert first["pid"] == second["pid"]  # a persistent worker: torch imported once
        assert first["pgid"] == first["pid"]  # its own process group
        env = first["env"]
        assert env["HF_HUB_OFFLINE"] == "1" and env["HOME"].startswith(first["cwd"])
        assert env["CUDA_VISIBLE_DEVICES"] == ""  # reserved no GPU, sees none
        assert not any(k.startswith("RAY_") for k in env)
        assert first["cwd"] != os.getcwd()
        assert executor.lane("proposer") is executor.lane("proposer")
        lane = executor.lane("proposer").run(f"{DIAG}:remember", {"value": 7})
        assert lane.ok and executor.lane("proposer").run(
            f"{DIAG}:remember", {"value": 8}).value == {"before": 7}  # state kept
    assert not ray.is_initialized()


def test_submit_starts_one_job_per_free_actor(ray_head: str) -> None:
    """What --strategy async builds on: a job goes in as soon as an actor frees."""
    with _executor(ray_head, workers=2) as executor:
        futures = [executor.submit((i, NamedJob(f"{DIAG}:describe", {}), 120.0)) for i in range(3)]
        results = [f.result(timeout=300) for f in futures]
        assert all(r.ok for r in results), [r.error for r in results]
        # both actors' workers served (by workspace: under PID namespaces both pids may be 2)
        assert len({r.value["cwd"] for r in results}) == 2


def test_a_timeout_kills_the_candidates_process_group_on_the_ray_side(ray_head: str) -> None:
    with _executor(ray_head) as executor:
        seen: list[int] = []
        began = time.monotonic()
        ((_, result),) = list(executor.run_all(
            [("slow", NamedJob(f"{DIAG}:sleep", {"seconds": 120, "spawn": True}), 3.0)],
            on_progress=lambda _key, message: seen.append(message["child"])))
        assert result.status is JobStatus.TIMEOUT, result
        assert "every process it started were killed" in result.error
        assert time.monotonic() - began < 60
        assert seen and seen[0] > 0
        time.sleep(1)
        assert not _still_running(seen[0])  # the job's own child died with the group
        ((_, after),) = list(executor.run_all([("next", NamedJob(f"{DIAG}:remember", {}), 60.0)]))
        assert after.ok


def test_a_killed_ray_worker_takes_only_its_candidate(ray_head: str) -> None:
    with _executor(ray_head) as executor:
        slot = executor.slots[0]
        ((_, warm),) = list(executor.run_all([("warm", NamedJob(f"{DIAG}:remember", {}), 60.0)]))
        assert warm.ok
        actor_pid = slot.pid()
        sandbox = _children(actor_pid)
        assert sandbox  # the actor's sandbox worker
        timer = threading.Timer(3.0, os.kill, (actor_pid, signal.SIGKILL))
        timer.start()
        try:
            results = dict(executor.run_all([
                ("killed", NamedJob(f"{DIAG}:sleep", {"seconds": 60}), 120.0),
                ("next", NamedJob(f"{DIAG}:describe", {}), 120.0)]))
        finally:
            timer.cancel()
        assert results["killed"].status is JobStatus.DIED
        assert "Ray actor died" in results["killed"].error
        assert results["next"].ok  # a new actor took the slot; the run goes on
        assert results["next"].value["pid"] not in sandbox
        time.sleep(2)
        assert not any(_running(pid) for pid in sandbox)  # no orphaned sandbox worker


def test_files_travel_once_through_the_object_store(ray_head: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "tokens.json"
    data.write_text('{"input_ids": [[1]], "labels": [[2]]}')
    with _executor(ray_head) as executor:
        token, ref = executor.shipper.ship(str(data), True)
        assert executor.shipper.ship(str(data), True) == (token, ref)  # put once
        host = _Host(WorkerSettings(preload=(), extra_jobs=(f"{DIAG}:*",)), "test")
        try:
            local = host._local(str(data), token, ref, True)
            assert local != str(data) and Path(local).read_bytes() == data.read_bytes()
            monkeypatch.setattr(ray, "get", lambda *_a, **_k: pytest.fail("fetched twice"))
            assert host._local(str(data), token, ref, True) == local
            monkeypatch.undo()
        finally:
            host.close()
        data.write_text("changed")  # a new version travels again
        assert executor.shipper.ship(str(data), True)[0] != token


def test_a_gpu_asked_of_a_cluster_without_one_is_one_line(ray_head: str) -> None:
    for settings in ({"gpus_per_worker": 0.25}, {"lane_gpus": 1.0}):
        with pytest.raises(ExecutorError, match="has none") as caught:
            _executor(ray_head, **settings)
        assert "\n" not in str(caught.value)
        assert not ray.is_initialized()


def _scores(run_dir: Path) -> dict[str, float | None]:
    import sqlite3

    with sqlite3.connect(run_dir / "run.sqlite") as db:
        return dict(db.execute("SELECT hash, score FROM variants"))


@pytest.mark.parametrize("proposer", ["random", "t5", "learned"])
def test_the_smoke_preset_gives_the_same_best_on_ray_as_locally(
        ray_head: str, tmp_path: Path, proposer: str) -> None:
    changes: dict[str, Any] = {"proposer": proposer}
    if proposer == "t5":  # one episode is enough to train, save, bring back and sample
        changes.update(episodes=1, batches=1)
    if proposer == "learned":  # the second episode warm-starts from the first's weights
        changes.update(episodes=2, batches=1)
    summaries = {}
    for executor, extra in (("local", {}), ("ray", {"ray_address": ray_head})):
        run = Run(tmp_path / executor,
                  preset("smoke").with_overrides(executor=executor, **changes, **extra))
        try:
            summaries[executor] = run.execute()
        finally:
            run.close()
    assert summaries["ray"].best_hash == summaries["local"].best_hash
    assert summaries["ray"].best_score == summaries["local"].best_score
    assert _scores(tmp_path / "ray") == _scores(tmp_path / "local")
    if proposer == "t5":  # the trained proposer came back to the driver's run directory
        model = tmp_path / "ray" / "episodes" / "1" / "model"
        assert (model / "proposer.json").exists() and list(model.glob("*.safetensors"))
    if proposer == "learned":  # hindsight pairs and the warm start crossed to the actor
        meta = json.loads((tmp_path / "ray" / "episodes" / "2" / "model" / "proposer.json")
                          .read_text())
        assert meta["warm_start"] == str(tmp_path / "ray" / "episodes" / "1" / "model")
    assert not ray.is_initialized()


def test_a_driver_killed_with_sigkill_resumes_on_ray_to_the_same_result(
        ray_head: str, tmp_path: Path) -> None:
    cli = [sys.executable, "-c", "from deepphoenix.cli import main; main()", "run",
           "--preset", "smoke", "--proposer", "random", "--episodes", "1", "--no-plots",
           "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    whole = subprocess.run([*cli, "--run-dir", str(tmp_path / "whole")], env=env,
                           capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-2000:]
    run_dir = tmp_path / "killed"
    driver = subprocess.Popen([*cli, "--run-dir", str(run_dir), "--executor", "ray",
                               "--ray-address", ray_head], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    assert driver.stdout is not None
    scored = 0
    for line in driver.stdout:
        if '"event": "evaluated"' in line:
            scored += 1
            if scored == 3:
                driver.kill()  # SIGKILL: no cleanup runs in the driver
                break
    driver.wait(timeout=60)
    assert scored == 3
    resumed = subprocess.run([*cli[:4], "--no-plots", "--run-dir", str(run_dir), "--resume",
                              "--executor", "ray", "--ray-address", ray_head], env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _scores(run_dir) == _scores(tmp_path / "whole")


def test_a_run_starts_and_stops_its_own_local_ray_instance(tmp_path: Path) -> None:
    """No --ray-address and no Ray running in the process: the run starts a local instance
    and shuts it down, leaving no Ray process behind."""
    temp = Path("/tmp") / f"dpray-own-{os.getpid()}"  # Ray's socket paths must be short
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": str(temp)}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run(
        [sys.executable, "-c", "from deepphoenix.cli import main; main()", "run",
         "--preset", "smoke", "--proposer", "random", "--episodes", "1", "--batches", "1",
         "--no-plots", "--executor", "ray", "--run-dir", str(tmp_path / "run")],
        env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "run" / "summary.json").exists()
    time.sleep(2)
    shutil.rmtree(temp, ignore_errors=True)
    left = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(temp).encode() in (entry / "cmdline").read_bytes():
                    left.append(entry.name)
            except OSError:
                continue
    assert not left, f"Ray processes left behind: {left}"


def test_a_project_travels_to_a_node_once(ray_head: str, tmp_path: Path) -> None:
    """A run over a project (issue 32) on two Ray workers: the same scores as locally, and
    every candidate's workspace links the one copy of the project the node holds."""
    from click.testing import CliRunner

    from deepphoenix.cli import cli
    from deepphoenix.store import RunStore
    from tests.search.project import run_args, write_project

    project = write_project(tmp_path / "nanogpt")
    for executor, extra in (("local", []), ("ray", ["--executor", "ray", "--ray-address",
                                                      ray_head])):
        result = CliRunner().invoke(cli, [*run_args(project), "--workers", "2", "--no-plots",
                                          "--run-dir", str(tmp_path / executor), *extra])
        assert result.exit_code == 0, result.output
    assert _scores(tmp_path / "ray") == _scores(tmp_path / "local")
    with RunStore.open(tmp_path / "ray") as store:
        tails = [v.metrics["output_tail"] for v in store.variants()]
    places = {line.split("data at ", 1)[1].split(":")[0] for tail in tails
              for line in tail.splitlines() if line.startswith("data at ")}
    assert len(places) == 1 and "deepphoenix-ray-shared" in places.pop()
    assert all("git False" in tail for tail in tails)
    assert not ray.is_initialized()
