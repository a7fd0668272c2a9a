"""Worker start cost and memory: what a sandbox worker costs before it evaluates anything,
for a job that needs no torch (the synthetic objective of `bench_async.py`) and for the
`cpu` preset's few-shot evaluation (which does).

For each job kind, `--repeats` times: start one sandbox worker with the settings a run
gives its evaluation workers (`evaluation_preload`: the modules the run decides the job
needs; ``--preload torch,transformers`` forces a list), then run the job once. Printed:

- start: seconds from starting the worker process to its "ready" (`Worker.startup_seconds`);
- first job: the first job's wall time in that fresh worker (includes any import the job
  had to do itself); warm job: the median wall time of the next `--repeats` jobs in the
  same worker, from the parent's side (the job, the pipe both ways and the worker's
  clean-up after it), and of the job function alone inside the worker;
- RSS: the resident set of the worker's whole process tree (bubblewrap, supervisor,
  worker) after the first job, in MiB, from /proc (shared pages counted in each process);
- torch: whether the worker had imported torch at the end.

With ``--starts N`` it measures instead what confinement costs per worker start, for
each sandbox found here (none: ``confine=False``; the system's bwrap; the bundled one),
rounds interleaved, medians of N:

- ``true``: running ``/bin/true`` directly, and through the very bwrap command line a
  worker gets (namespaces, binds, fresh /dev and /proc, sized tmpfs);
- worker start: a torch-free worker (no preload) from process start to its "ready";
- job: the round trip of a trivial job run in the worker's loop, and in a process forked
  for it (`NamedJob(isolated=True)`, as every evaluation now runs).

Usage::

    python benchmarks/bench_worker.py [--repeats 3] [--jobs synthetic,cpu]
        [--preload auto|torch,transformers|none] [--json OUT]
    python benchmarks/bench_worker.py --starts 20 [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from _common import end_table, machine_header

from deepphoenix.engine import preset
from deepphoenix.evaluator import EvalSettings
from deepphoenix.grammar import load_grammar
from deepphoenix.mutator import parse_program
from deepphoenix.objectives import resolve_objective
from deepphoenix.proposers import make_dataset
from deepphoenix.proposers._t5 import prepare_data
from deepphoenix.sandbox import Worker, WorkerSettings
from deepphoenix.seeds import seed_source

HERE = Path(__file__).parent


def _tree_rss_mib(root: int) -> float:
    """Resident set of `root` and every process below it, MiB."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            found = re.search(r"^PPid:\s+(\d+)", (proc / "status").read_text(), re.M)
        except OSError:
            continue
        if found:
            children.setdefault(int(found.group(1)), []).append(int(proc.name))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        found = re.search(r"^VmRSS:\s+(\d+)", status, re.M)
        if found:
            total += int(found.group(1)) / 1024
    return total


def _jobs(folder: Path) -> dict[str, tuple[EvalSettings, str]]:
    """The job kinds: their evaluation settings and the source they score."""
    objective = folder / "synthetic_objective.py"
    text = (HERE / "synthetic_objective.py").read_text()
    objective.write_text(re.sub(r"LOW, HIGH = .*", "LOW, HIGH = 0.0, 0.0", text))
    synthetic = EvalSettings(objective=resolve_objective(f"{objective}:evaluate"),
                             timeout=300.0)
    config = preset("cpu")
    program = parse_program(seed_source(config.seed_source), load_grammar(config.grammar))
    data = prepare_data(make_dataset(program, config.fewshot_samples, seed=0), "source",
                        folder / "cpu", 1024)
    fewshot = EvalSettings(rows=data.tokens_path, vocab_size=data.vocab_size,
                           samples=config.fewshot_samples,
                           batch_size=config.fewshot_batch_size, timeout=300.0)
    return {"synthetic": (synthetic, (HERE / "synthetic_program.py").read_text()),
            "cpu": (fewshot, program.text)}


def _preload(choice: str, settings: EvalSettings, source: str) -> tuple[str, ...]:
    if choice == "none":
        return ()
    if choice != "auto":
        return tuple(choice.split(","))
    try:
        from deepphoenix.evaluator import evaluation_preload
    except ImportError:  # a tree from before the decision existed: its fixed default
        return WorkerSettings().preload
    return evaluation_preload(settings.objective, source)


def measure(kind: str, settings: EvalSettings, source: str, preload: tuple[str, ...],
            repeats: int) -> dict[str, Any]:
    starts, firsts, rss, later, inside = [], [], [], [], []
    torch_loaded = False
    job = settings.job(source)
    for _ in range(repeats):
        worker = Worker(WorkerSettings(threads=1, device="cpu", preload=preload,
                                       readable=(str(Path(settings.rows or HERE).parent),)),
                        name="bench")
        try:
            worker.start()
            starts.append(worker.startup_seconds[-1])
            began = time.perf_counter()
            result = worker.run(job, timeout=settings.timeout)
            firsts.append(time.perf_counter() - began)
            if not result.ok or result.value.get("status") != "scored":
                raise SystemExit(f"{kind}: the job failed: {result.error or result.value}")
            assert worker.pid is not None
            rss.append(_tree_rss_mib(worker.pid))
            for _ in range(repeats):
                began = time.perf_counter()
                probe = worker.run(job, timeout=settings.timeout)
                later.append(time.perf_counter() - began)
                inside.append(probe.seconds)
            torch_loaded = bool(result.value["metrics"].get("params") is not None
                                or _torch_in(worker.pid))
        finally:
            worker.close()
    return {"job": kind, "preload": list(preload), "start_s": statistics.median(starts),
            "first_job_s": statistics.median(firsts), "warm_job_s": statistics.median(later),
            "warm_inside_s": statistics.median(inside),
            "rss_mib": statistics.median(rss), "torch": torch_loaded, "repeats": repeats}


def _torch_in(root: int) -> bool:
    """Whether a process below `root` has torch's library mapped."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            maps = (proc / "maps").read_text()
        except OSError:
            continue
        if "libtorch" in maps and str(root) in _ancestors(int(proc.name)):
            return True
    return False


def _ancestors(pid: int) -> str:
    chain = []
    while pid > 1:
        try:
            found = re.search(r"^PPid:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M)
        except OSError:
            break
        if not found:
            break
        pid = int(found.group(1))
        chain.append(str(pid))
    return " ".join(chain)


def _sandboxes() -> dict[str, str | None]:
    """The sandboxes to compare: none, and each bwrap found (name -> its path)."""
    import shutil

    from deepphoenix.sandbox import _confine

    found: dict[str, str | None] = {"none": None}
    system = shutil.which("bwrap")
    if system:
        found["system bwrap"] = system
    bundled = _confine._bundled()
    if bundled:
        found["bundled bwrap"] = bundled
    return found


def _timed(command: list[str]) -> float:
    import subprocess

    began = time.perf_counter()
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - began


def measure_starts(starts: int) -> list[dict[str, Any]]:
    """Per sandbox: `true` bare or through bwrap, a torch-free worker's start, and a trivial
    job's round trip in the loop and in a process of its own (medians of `starts`)."""
    from deepphoenix.sandbox import NamedJob, _confine

    job = "deepphoenix.sandbox._diagnostics"
    settings = WorkerSettings(threads=1, preload=(), extra_jobs=(f"{job}:*",))
    sandboxes = _sandboxes()
    samples: dict[str, dict[str, list[float]]] = {
        name: {"true": [], "start": [], "job": [], "forked job": []} for name in sandboxes}
    true = "/bin/true" if os.path.exists("/bin/true") else "/usr/bin/true"
    with tempfile.TemporaryDirectory(prefix="bench-starts-") as tmp:
        for _ in range(starts):
            for name, bwrap in sandboxes.items():
                os.environ.pop("DEEPPHOENIX_BWRAP", None)
                if bwrap is not None:
                    os.environ["DEEPPHOENIX_BWRAP"] = bwrap
                _confine.confinement.cache_clear()
                if bwrap is None:
                    command = [true]
                else:
                    command = _confine.confine_command(bwrap, [true], Path(tmp),
                                                       scratch=2**26)
                samples[name]["true"].append(_timed(command))
                worker = Worker(replace(settings, confine=bwrap is not None), name="bench")
                try:
                    worker.start()
                    samples[name]["start"].append(worker.startup_seconds[-1])
                    for key, isolated in (("job", False), ("forked job", True)):
                        began = time.perf_counter()
                        result = worker.run(NamedJob(f"{job}:remember", {"value": 1},
                                                     isolated=isolated), timeout=60)
                        samples[name][key].append(time.perf_counter() - began)
                        if not result.ok:
                            raise SystemExit(f"{name}: the job failed: {result.error}")
                finally:
                    worker.close()
    os.environ.pop("DEEPPHOENIX_BWRAP", None)
    _confine.confinement.cache_clear()
    return [{"sandbox": name, **{k: statistics.median(v) for k, v in found.items()},
             "starts": starts} for name, found in samples.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=0,
                        help="measure confinement's cost per start instead (N rounds)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", default="synthetic,cpu")
    parser.add_argument("--preload", default="auto",
                        help="auto (the run's decision), none, or MODULE,MODULE")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    load = os.getloadavg()
    print(machine_header(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start"))
    if args.starts:
        found = measure_starts(args.starts)
        print("| sandbox | `true` | worker start (no torch) | job in the loop | job in its own "
              "process |")
        print("|---|---|---|---|---|")
        for r in found:
            print(f"| {r['sandbox']} | {1000 * r['true']:.0f} ms | {1000 * r['start']:.0f} ms | "
                  f"{1000 * r['job']:.1f} ms | {1000 * r['forked job']:.1f} ms |")
        end_table(found, args.json)
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        jobs = _jobs(Path(tmp))
        for kind in args.jobs.split(","):
            settings, source = jobs[kind]
            row = measure(kind, settings, source, _preload(args.preload, settings, source),
                          args.repeats)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("| job | preload | worker start | first job | warm job (inside) | worker tree RSS "
          "| torch |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['job']} | {','.join(r['preload']) or 'none'} | {r['start_s']:.2f} s | "
              f"{r['first_job_s']:.2f} s | {r['warm_job_s']:.3f} s ({r['warm_inside_s']:.3f} s) | "
              f"{r['rss_mib']:.0f} MiB | "
              f"{'yes' if r['torch'] else 'no'} |")
    end_table(rows, args.json)


if __name__ == "__main__":
    main()
