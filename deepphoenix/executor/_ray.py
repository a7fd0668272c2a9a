"""The Ray executor: the same sandbox workers as `local`, each owned by a Ray actor.

Every evaluation worker slot is an actor (`_Host`) that owns one `deepphoenix.sandbox.Worker`
on whichever node Ray placed it: a subprocess in its own process group, killed as a group
at the hard timeout, under the memory limit, with the scrubbed offline environment. The
worker imports torch once and then runs job after job, so torch is imported once per
remote worker, not once per candidate.

Nothing assumes a shared filesystem. The inputs a job record declares (`Job.paths`: the
evaluator's ``rows`` and ``project``, the proposer's ``tokens`` and ``tokenizer``, a
``model_dir``) are put in Ray's object store once per executor (``ray.put`` of the bytes;
a folder's ``.git`` stays behind) and written once per node, into a folder of the node's
temporary directory named by their content that every actor of the node reads (the first
actor to need it writes it, under a lock; the last to close removes it), then the record's
paths are rewritten: a project's files travel to a node once, not once per candidate or
per actor. A folder a job declares it writes (``out``, the trained proposer) is written on
the actor's side and its files come back to the driver, where the run directory is.

An actor (or its node) that dies takes only its job, recorded as `JobStatus.DIED` with
Ray's reason; the slot gets a new actor at its next job. Progress messages of a job reach
the caller when the job ends (a timed-out evaluation is still recorded at the stage it
last reported).

Resources: an evaluation actor reserves its worker's threads as CPUs and
`ExecutorSettings.gpus_per_worker` GPUs (fractions let several small candidates share one
GPU); an actor that reserves no GPU sees none. The proposer's lane reserves
`ExecutorSettings.lane_gpus` GPUs and no CPU: the search loop never trains or samples while
a batch evaluates, so the lane and the evaluation workers take turns on the same cores.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray
from ray import exceptions as ray_errors

from deepphoenix.errors import DeepPhoenixError, WorkerError
from deepphoenix.executor._base import (
    Executor,
    ExecutorError,
    ExecutorSettings,
    Progress,
    Submission,
)
from deepphoenix.sandbox import Job, JobResult, JobStatus, SlotPool, Worker, WorkerSettings, as_job

__all__ = ["RayExecutor"]

logger = logging.getLogger(__name__)

_START_ALLOWANCE = 360.0  # a job's answer may wait for its worker to start (up to 300 s)
_DEATHS = (ray_errors.RayActorError, ray_errors.WorkerCrashedError, ray_errors.NodeDiedError,
           ray_errors.ObjectLostError, ray_errors.OwnerDiedError)

Bundle = dict[str, bytes]  # relative path -> bytes: a file (one entry) or a directory


class _Host:
    """The actor: one sandbox worker on a Ray node, and the inputs it has materialized."""

    def __init__(self, settings: WorkerSettings, name: str) -> None:
        _remove_orphans()
        self.root = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-{name}-"))
        # The worker reads its shipped inputs and writes its outputs under the root.
        self.worker = Worker(replace(settings, writable=(*settings.writable, str(self.root))),
                             name=name)
        self.inputs: dict[str, Path] = {}  # content token -> local path
        self.outputs: dict[str, Path] = {}  # driver's path of an output dir -> local dir
        self.count = 0

    def start(self) -> dict[str, Any]:
        """Start the worker (torch imported) and say where this actor is."""
        self.worker.start()
        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(),
                "host": socket.gethostname()}

    def pid(self) -> int:
        return os.getpid()

    def _local(self, path: str, token: str | None, ref: Any, is_file: bool) -> str:
        for produced, local in self.outputs.items():
            if path == produced or path.startswith(produced.rstrip("/") + "/"):
                return str(local / os.path.relpath(path, produced))
        if token is None:
            return path  # not shipped: the caller decided it is already here
        found = self.inputs.get(token)
        if found is None:
            folder = _node_copy(token, ref)
            found = self.inputs[token] = folder / Path(path).name if is_file else folder
        return str(found)

    def run(self, job: Job, timeout: float | None,
            shipped: dict[str, tuple[str | None, Any]],
            ) -> tuple[JobResult, list[dict[str, Any]], dict[str, Bundle]]:
        """Run one job on the worker with its paths made local; return the result, its
        progress messages and the files of the directories it wrote."""
        paths = job.paths()
        local: dict[str, str] = {}
        for key, (token, ref) in shipped.items():
            local[key] = self._local(paths.inputs[key], token, ref, key in paths.files)
        written: dict[str, Path] = {}
        for key, driver_path in paths.outputs.items():
            self.count += 1
            folder = self.root / "outputs" / str(self.count)
            written[driver_path] = folder
            local[key] = str(folder)
        messages: list[dict[str, Any]] = []
        result = self.worker.run(job.with_paths(local), timeout=timeout,
                                 on_progress=messages.append)
        bundles: dict[str, Bundle] = {}
        if result.ok:
            for driver_path, folder in written.items():
                if folder.is_dir():
                    bundles[driver_path] = _read_bundle(folder)
                    self.outputs[driver_path] = folder
        return result, messages, bundles

    def close(self) -> None:
        self.worker.close()
        shutil.rmtree(self.root, ignore_errors=True)
        _release_node_copies(os.getpid())


_PREFIX = "deepphoenix-ray-"
_SHARED = f"{_PREFIX}shared"  # the node's copies of shipped inputs, by content token


def _remove_orphans() -> None:
    """Remove the folders of actors on this node that were killed (a killed actor cannot
    clean up after itself); their names carry the actor's process id. The node's copies
    of inputs that no live actor uses go too."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*"):
        pid = folder.name[len(_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(folder, ignore_errors=True)
    _release_node_copies(None)


@contextmanager
def _node_lock() -> Iterator[Path]:
    base = Path(tempfile.gettempdir()) / _SHARED
    base.mkdir(exist_ok=True)
    with open(base / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield base
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _node_copy(token: str, ref: Any) -> Path:
    """The node's copy of a shipped input, written by the first actor that needs it; this
    actor is recorded as one of its users."""
    with _node_lock() as base:
        folder = base / token
        users = base / f"{token}.users"
        users.mkdir(exist_ok=True)
        (users / str(os.getpid())).touch()
        if not folder.is_dir():
            bundle: Bundle = ray.get(ref)
            tmp = base / f"{token}.part"
            shutil.rmtree(tmp, ignore_errors=True)
            _write_bundle(tmp, bundle)
            tmp.mkdir(exist_ok=True)  # an empty folder is an input too
            tmp.rename(folder)
    return folder


def _release_node_copies(pid: int | None) -> None:
    """Drop `pid` (None: every dead actor) from the users of the node's copies, and remove
    the copies nobody uses any more."""
    with _node_lock() as base:
        for users in base.glob("*.users"):
            for marker in users.iterdir():
                if (pid is not None and marker.name == str(pid)) or (
                        not Path(f"/proc/{marker.name}").exists()):
                    marker.unlink(missing_ok=True)
            if not any(users.iterdir()):
                shutil.rmtree(base / users.name.removesuffix(".users"), ignore_errors=True)
                users.rmdir()


@functools.cache
def _host_class() -> Any:
    """`_Host` as a Ray actor class, made once (Ray must be imported first)."""
    return ray.remote(_Host)


_NOT_SHIPPED = frozenset({".git"})  # folders a shipped input leaves behind


def _files(folder: Path) -> list[Path]:
    """The files of `folder` to ship, ``.git`` left out (not even walked: a project's
    history can hold tens of thousands of files)."""
    found: list[Path] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in _NOT_SHIPPED]
        found += [p for p in (Path(root) / n for n in names) if p.is_file()]
    return sorted(found)


def _read_bundle(folder: Path) -> Bundle:
    return {str(p.relative_to(folder)): p.read_bytes() for p in _files(folder)}


def _write_bundle(folder: Path, bundle: Bundle) -> None:
    for rel, data in bundle.items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _check_address(address: str, timeout: float) -> None:
    """Fail fast, in one line, when nothing listens at HOST:PORT (Ray itself retries for
    minutes)."""
    if address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ExecutorError(f"Expected a Ray address HOST:PORT but got ray_address={address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ExecutorError(f"no Ray cluster answers at {address} within {timeout:g} s "
                            f"({exc}); start one with `ray start --head` or check the "
                            "address") from None


class _Shipper:
    """Puts the driver's files into the object store, once per file version."""

    def __init__(self) -> None:
        self._refs: dict[tuple[Any, ...], tuple[str, Any]] = {}

    def ship(self, path: str, is_file: bool) -> tuple[str, Any]:
        where = Path(path)
        try:
            files = [where] if is_file else _files(where)
            key = (path, is_file, *((str(p), p.stat().st_size, p.stat().st_mtime_ns)
                                    for p in files))
        except OSError as exc:
            raise WorkerError(f"cannot send {path} to the Ray workers: {exc}") from None
        found = self._refs.get(key)
        if found is None:
            bundle = ({where.name: where.read_bytes()} if is_file
                      else _read_bundle(where))
            digest = hashlib.sha256()
            for rel, data in sorted(bundle.items()):
                digest.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
            found = self._refs[key] = (digest.hexdigest()[:24], ray.put(bundle))
        return found


class _Slot:
    """One actor, recreated after it dies; what it holds from the driver's outputs."""

    def __init__(self, executor: RayExecutor, settings: WorkerSettings, name: str,
                 num_cpus: float, num_gpus: float) -> None:
        self.executor = executor
        self.settings = settings
        self.name = name
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.actor: Any = None
        self.produced: set[str] = set()  # output dirs this actor incarnation holds
        self.busy = False  # a job is in flight (closing then kills at once)

    def _actor(self) -> Any:
        if self.actor is None:
            settings = self.settings
            if not self.num_gpus:  # a worker that reserved no GPU must not use one
                settings = replace(settings, extra_env=(*settings.extra_env,
                                                        ("CUDA_VISIBLE_DEVICES", "")))
            remote = _host_class().options(
                num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_restarts=0,
                max_task_retries=0)
            self.actor = remote.remote(replace(settings, log_path=None), self.name)
            self.produced = set()
        return self.actor

    def warm(self) -> Any:
        """Start the worker in the background (torch imports while the run prepares)."""
        return self._actor().start.remote()

    def run(self, job: Job | str, args: dict[str, Any] | None = None, *,
            timeout: float | None = None,
            on_progress: Callable[[dict[str, Any]], None] | None = None) -> JobResult:
        """Run one job on this slot's actor (see `Worker.run`); a dead actor is a `DIED`
        result and the slot starts a new actor at its next job."""
        job = as_job(job, args)
        actor = self._actor()
        paths = job.paths()
        shipped: dict[str, tuple[str | None, Any]] = {}
        for key, value in paths.inputs.items():
            if any(value == p or value.startswith(p.rstrip("/") + "/")
                   for p in self.produced):
                shipped[key] = (None, None)
            else:
                shipped[key] = self.executor.shipper.ship(value, key in paths.files)
        ref = actor.run.remote(job, timeout, shipped)
        wait = None if timeout is None else timeout + _START_ALLOWANCE
        self.busy = True
        try:
            result, messages, bundles = ray.get(ref, timeout=wait)
        except ray_errors.GetTimeoutError:
            self.discard()
            return JobResult(JobStatus.TIMEOUT, error=f"no answer from the Ray actor within "
                             f"{wait:g} s; the actor was killed", seconds=wait or 0.0)
        except _DEATHS as exc:
            self.discard()
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return JobResult(JobStatus.DIED, kind="died", error=(
                f"the Ray actor died ({type(exc).__name__}" + (f": {reason})" if reason
                                                               else ")")))
        except ray_errors.RayTaskError as exc:
            self.discard()
            cause = getattr(exc, "cause", None)
            if isinstance(cause, DeepPhoenixError):
                raise cause from None
            raise WorkerError(f"the Ray actor {self.name} failed: "
                              f"{str(cause or exc).strip().splitlines()[-1]}") from None
        finally:
            self.busy = False
        if on_progress is not None:
            for message in messages:
                on_progress(message)
        for driver_path, bundle in bundles.items():
            folder = Path(driver_path)
            folder.mkdir(parents=True, exist_ok=True)
            _write_bundle(folder, bundle)
            self.produced.add(driver_path)
        return result

    def pid(self) -> int:
        """The actor's process id (tests kill it)."""
        return int(ray.get(self._actor().pid.remote()))

    def discard(self) -> None:
        if self.actor is not None:
            with contextlib.suppress(Exception):
                ray.kill(self.actor, no_restart=True)
            self.actor = None

    def close(self) -> None:
        """Let the actor close its worker and remove its files; an actor still busy with
        a job (an interrupted run) is killed at once, and its worker follows it."""
        if self.actor is not None and not self.busy:
            with contextlib.suppress(Exception):
                ray.get(self.actor.close.remote(), timeout=15)
        self.discard()


class RayExecutor(Executor):
    """Sandbox workers owned by Ray actors, on a cluster or on a local Ray instance."""

    name = "ray"

    def __init__(self, settings: ExecutorSettings) -> None:
        super().__init__(settings)
        self.shipper = _Shipper()
        self.owns_ray = False
        self._connect()
        try:
            self._check_resources()
            cpus = float(max(1, settings.worker.threads))
            self.slots = [_Slot(self, settings.worker, f"eval{i}", cpus,
                                settings.gpus_per_worker) for i in range(settings.workers)]
            for slot in self.slots:
                slot.warm()
            self._pool = SlotPool(self.slots, name="deepphoenix-ray")
            self._lanes: dict[str, _Slot] = {}
        except BaseException:
            self._disconnect()
            raise

    # -- the cluster -------------------------------------------------------------------------
    def _connect(self) -> None:
        if ray.is_initialized():
            return  # the caller's Ray (a test, a notebook): used as is, left running
        address = self.settings.address
        if address is not None:
            _check_address(address, self.settings.connect_timeout)
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                   "logging_level": logging.ERROR}
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExecutorError(f"cannot connect to Ray at {address or 'a local instance'}: "
                                f"{text}") from None
        self.owns_ray = True

    def _check_resources(self) -> None:
        s = self.settings
        total = ray.cluster_resources()
        gpus = float(total.get("GPU", 0.0))
        where = s.address or "the local Ray instance"
        for asked, option in ((s.gpus_per_worker, "--gpus-per-eval"),
                              (s.lane_gpus, "--train-on gpu")):
            if asked and gpus <= 0:
                raise ExecutorError(f"{option} asks for a GPU but {where} has none; drop it "
                                    "or add a GPU node")
        node_cpus = [float(n.get("Resources", {}).get("CPU", 0.0))
                     for n in ray.nodes() if n.get("Alive")]
        needed = float(max(1, s.worker.threads))
        if node_cpus and needed > max(node_cpus):
            raise ExecutorError(f"each evaluation worker reserves {needed:g} CPUs (--threads) "
                                f"but the largest node of {where} has {max(node_cpus):g}; "
                                "pass --threads N with N at most that")

    def _disconnect(self) -> None:
        if self.owns_ray:
            with contextlib.suppress(Exception):
                ray.shutdown()
            self.owns_ray = False

    # -- the seam ----------------------------------------------------------------------------
    def run_all(self, jobs: Iterable[Submission], on_progress: Progress | None = None,
                ) -> Iterator[tuple[Any, JobResult]]:
        return self._pool.run_all(jobs, on_progress=on_progress)

    def submit(self, job: Submission, on_progress: Progress | None = None) -> Future[JobResult]:
        """Start one job on the next free actor; its future holds the result."""
        return self._pool.submit(*job, on_progress=on_progress)

    def lane(self, name: str) -> _Slot:
        found = self._lanes.get(name)
        if found is None:
            found = self._lanes[name] = _Slot(self, self.settings.lane, name, 0.0,
                                              self.settings.lane_gpus)
        return found

    def close(self) -> None:
        try:
            for slot in [*self._lanes.values(), *self.slots]:
                slot.close()
            self._pool.shutdown()
        finally:
            self._disconnect()
            super().close()
