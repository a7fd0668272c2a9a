"""The evaluation job, run inside a sandbox worker: the cascade after the static stage.

build → (built-in objectives on the task's data) smoke → fewshot or train → heldout (val-loss);
build → (a user objective, or a data-free built-in such as self-replication) objective;
build (the candidate's workspace) → command (a command objective, ``cmd:…``).

A run over a project gets a fresh workspace per candidate (`_workspace`): the project with
the candidate's files in place. A command runs there; a user objective finds it as
``ctx.workdir``.

Every outcome is an `EvalReport` (sent as its ``to_dict()``): a trivial quine
(self-replication) is rejected at ``objective`` with its metrics (recorded, never the
best). It never raises for a candidate's failure: a stage that fails gives a failed report
with the stage, the reason and the traceback; a scored candidate gives its score and
metrics. The parent records timeouts and worker deaths itself, at the stage this job last
reported.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from deepphoenix.evaluator._workspace import build_workspace
from deepphoenix.objectives import (
    CommandFailure,
    ObjectiveContext,
    ObjectiveFailure,
    ObjectiveSpec,
    ObjectiveUsageError,
    TrivialQuine,
    builtin_function,
    call_objective,
    load_objective,
    parse_metric,
    run_command,
)
from deepphoenix.sandbox import EvalJob, EvalReport, JobContext, failure_text, is_out_of_memory
from deepphoenix.status import VariantStatus
from deepphoenix.training import (
    BuildFailure,
    Dynamics,
    NoLossReported,
    NonFiniteLoss,
    TrainContext,
    autocast,
    count_parameters,
    counted_model,
    exec_program,
    get_task,
    is_module,
    load_rows,
    train_model,
)

__all__ = ["evaluate_job"]


def _reset_peak_rss() -> None:
    # Linux: writing 5 to clear_refs resets VmHWM, the peak resident set, for this job.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cuda_peak() -> int:
    import torch

    return int(torch.cuda.max_memory_allocated())


def _failure(stage: str, exc: BaseException) -> EvalReport:
    if isinstance(exc, BuildFailure | ObjectiveFailure | ObjectiveUsageError | NoLossReported
                  | NonFiniteLoss):
        return EvalReport.failed(stage, str(exc))
    message, trace = failure_text(exc)
    if is_out_of_memory(exc):
        message = f"out of memory: {message}{_memory_hint()}"
    return EvalReport.failed(stage, message, trace)


def _memory_hint() -> str:
    """Where the limit that was hit comes from, and how to raise it (the default divides
    80% of the machine's memory among the workers, so many workers starve each one)."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return ""
    return (f" (this worker's memory limit is {soft / 2**30:.1f} GB: raise it with "
            "--memory-limit GB or run fewer --workers)")


def evaluate_job(job: EvalJob, ctx: JobContext) -> dict[str, Any]:
    """Score one candidate source under the run's objective (an `EvalReport`, sent as a
    dict). Imports torch only when the objective, the program or the device needs it (a
    worker may start without it)."""
    return _evaluate(job, ctx).to_dict()


def _evaluate(job: EvalJob, ctx: JobContext) -> EvalReport:
    objective = ObjectiveSpec.from_dict(job.objective)
    device = ctx.device()
    cuda = device.startswith("cuda")
    _reset_peak_rss()
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    ctx.progress(stage="build")
    if objective.command:
        return _command(job, objective, device, ctx, began)
    try:
        program = exec_program(job.source, ctx.workspace, job.seed, job.vocab_size)
        model = counted_model(program, objective.uses_task, job.task, job.vocab_size)
        params = count_parameters(model) if is_module(model) else None
        if job.max_params is not None and params is not None and params > job.max_params:
            return EvalReport.rejected(
                "build", f"{params:,} parameters, over the limit of {job.max_params:,}",
                {"params": params})
        dynamics = Dynamics.read(program, Dynamics(lr=job.lr, batch_size=job.batch_size,
                                                   weight_decay=job.weight_decay))
        if is_module(model):
            model.to(device)
    except BaseException as exc:
        return _failure("build", exc)
    metrics: dict[str, Any] = {"params": params, "device": device,
                               "build_seconds": time.perf_counter() - began}
    if objective.uses_task:
        outcome = _builtin(job, objective, program, model, dynamics, device, ctx, metrics)
    else:
        outcome = _user(job, objective, program, device, ctx, metrics)
    if outcome.status is VariantStatus.SCORED:
        outcome = replace(outcome, metrics={
            **outcome.metrics,
            "wall_seconds": time.perf_counter() - began,
            "peak_memory": _cuda_peak() if cuda else _peak_rss(),
            "peak_memory_kind": "cuda allocated" if cuda else "process resident set",
        })
    return outcome


def _builtin(job: EvalJob, objective: ObjectiveSpec, program: Any, model: Any,
             dynamics: Dynamics, device: str, ctx: JobContext,
             metrics: dict[str, Any]) -> EvalReport:
    task = get_task(job.task)
    rows = load_rows(job.rows, ctx.state.setdefault("rows", {}))
    train_rows = rows[:job.samples]
    ctx.progress(stage="smoke")
    try:  # one forward and backward pass on the first batch, weights untouched
        model.train()
        with autocast(device):
            loss = task.loss(model, task.collate(train_rows[:job.batch_size], device))
        loss.backward()
        model.zero_grad(set_to_none=True)
        smoke_loss = float(loss.detach().float().item())
    except BaseException as exc:
        return _failure("smoke", exc)
    if not math.isfinite(smoke_loss):
        return EvalReport.failed("smoke", f"non-finite loss {smoke_loss} on the first batch")
    stage = "train" if dynamics.train is not None else "fewshot"
    ctx.progress(stage=stage)
    training = TrainContext(task, train_rows, device=device, seed=job.seed,
                            batch_size=dynamics.batch_size, epochs=1, shuffle=False)
    try:
        result = train_model(model, training, dynamics)
    except BaseException as exc:
        failed = _failure(stage, exc)
        if training.result.losses:  # what it trained on before it failed (compute spent)
            failed = replace(failed, metrics={"losses": training.result.losses,
                                              "steps": training.result.steps,
                                              "samples": training.result.samples})
        return failed
    metrics.update(result.to_dict(), smoke_loss=smoke_loss, dynamics=dynamics.describe())
    score = result.mean_loss
    if objective.uses_heldout:
        ctx.progress(stage="heldout")
        try:
            score = task.heldout_loss(model, rows[len(rows) - job.heldout:], device,
                                      job.batch_size)
        except BaseException as exc:
            return _failure("heldout", exc)
        if not math.isfinite(score):
            return EvalReport.failed("heldout", f"non-finite held-out loss {score}")
        metrics["heldout_loss"] = score
    return EvalReport.scored(score, metrics)


_CANDIDATE = "candidate"  # the candidate's workspace, in the worker's


def _threads() -> int:
    """The worker's thread budget (its settings), 0 when it has none."""
    try:
        return int(json.loads(os.environ.get("DEEPPHOENIX_WORKER", "{}")).get("threads") or 0)
    except (TypeError, ValueError):
        return 0


def _command(job: EvalJob, objective: ObjectiveSpec, device: str, ctx: JobContext,
             began: float) -> EvalReport:
    """Run the project's command in the candidate's workspace; its metric is the score."""
    workdir = ctx.workspace / _CANDIDATE
    try:
        build_workspace(workdir, job.project, job.files, job.link_bytes)
    except OSError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        return EvalReport.failed("build", f"the candidate's workspace cannot be made: {exc}")
    ctx.progress(stage="command")
    left = None
    if job.timeout:  # end it before the hard timeout, to keep its last lines
        left = max(1.0, job.timeout - max(1.0, 0.05 * job.timeout)
                   - (time.perf_counter() - began))
    try:
        score, metrics = run_command(
            objective.name, parse_metric(objective.metric), workdir, timeout=left,
            threads=_threads(), stop_step=job.stop_step,
            report=lambda step, value: ctx.progress(step=step, value=value))
    except CommandFailure as failure:
        return EvalReport.failed("command", str(failure), metrics=failure.metrics)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    metrics.update(device=device, wall_seconds=time.perf_counter() - began)
    return EvalReport.scored(score, metrics)


def _user(job: EvalJob, objective: ObjectiveSpec, program: Any, device: str,
          ctx: JobContext, metrics: dict[str, Any]) -> EvalReport:
    ctx.progress(stage="objective")
    workdir = ctx.workspace / ("objective" if not (job.project or job.files) else _CANDIDATE)
    try:  # a run over a project: the candidate's workspace is the objective's workdir
        build_workspace(workdir, job.project, job.files, job.link_bytes)
    except OSError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        return EvalReport.failed("objective",
                                 f"the candidate's workspace cannot be made: {exc}")
    deadline = (time.monotonic() + 0.75 * job.timeout) if job.timeout else None
    context = ObjectiveContext(device, job.seed, workdir,
                               lambda step, value: ctx.progress(step=step, value=value),
                               stop_step=job.stop_step, deadline=deadline)
    try:
        function = (builtin_function(objective.name) if objective.builtin else
                    load_objective(objective.text, objective.function, objective.origin,
                                   ctx.state.setdefault("objective", {}), objective.pickled))
        score, extra = call_objective(function, program, context)
    except TrivialQuine as trivial:
        return EvalReport.rejected("objective", str(trivial), {**metrics, **trivial.metrics})
    except BaseException as exc:
        return _failure("objective", exc)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    metrics.update(extra)
    if context.reports:
        metrics["reports"] = context.reports
    if job.stop_step is not None:
        metrics["stop_step"] = job.stop_step
        metrics["asked_to_stop"] = context.asked_to_stop
    return EvalReport.scored(score, metrics)
