"""The evaluation job, run inside a sandbox worker: build → smoke step → few-shot run.

It never raises for a candidate's failure: each stage that fails returns
``{"status": "failed", "stage": …, "reason": …, "traceback": …}``. The parent records
timeouts and worker deaths itself, at the stage this job last reported.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any

from deepphoenix.sandbox._build import BuildFailure, build_model, count_parameters
from deepphoenix.sandbox._child import JobContext
from deepphoenix.sandbox._fit import _batch, fit, load_tokens
from deepphoenix.sandbox._protocol import failure_text, is_out_of_memory

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


def _failure(stage: str, exc: BaseException) -> dict[str, Any]:
    message, trace = failure_text(exc)
    if is_out_of_memory(exc):
        message = f"out of memory: {message}"
    return {"status": "failed", "stage": stage, "reason": message, "traceback": trace}


def evaluate_job(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Score one candidate source: mean training loss of one epoch over the first
    `samples` pairs, fixed seed and order."""
    import torch

    device = ctx.device(args.get("device"))
    seed = int(args["seed"])
    cuda = device.startswith("cuda")
    _reset_peak_rss()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()

    ctx.progress(stage="build")
    try:
        model = build_model(args["source"], ctx.workspace, int(args["vocab_size"]), seed)
        params = count_parameters(model)
        model.to(device)
    except BuildFailure as exc:
        return {"status": "failed", "stage": "build", "reason": str(exc), "traceback": ""}
    except BaseException as exc:
        return _failure("build", exc)
    build_seconds = time.perf_counter() - began

    inputs, labels = load_tokens(args["tokens"], ctx.state.setdefault("tokens", {}))
    samples = int(args["samples"])
    inputs, labels = inputs[:samples], labels[:samples]
    batch_size = int(args["batch_size"])

    ctx.progress(stage="smoke")
    try:  # one forward and backward pass on the first batch, weights untouched
        model.train()
        batch = _batch(inputs[:batch_size], labels[:batch_size], device)
        loss = model(**batch).loss
        loss.backward()
        model.zero_grad(set_to_none=True)
        smoke_loss = float(loss.detach().float().item())
    except BaseException as exc:
        return _failure("smoke", exc)
    if not math.isfinite(smoke_loss):
        return {"status": "failed", "stage": "smoke",
                "reason": f"non-finite loss {smoke_loss} on the first batch", "traceback": ""}

    ctx.progress(stage="fewshot")
    try:
        result = fit(model, inputs, labels, device=device, epochs=1, batch_size=batch_size,
                     lr=float(args["lr"]), weight_decay=float(args.get("weight_decay", 0.01)),
                     seed=seed, shuffle=False, stop_on_nan=True)
    except BaseException as exc:
        return _failure("fewshot", exc)
    if result.stopped.startswith("non-finite"):
        return {"status": "failed", "stage": "fewshot", "reason": result.stopped,
                "traceback": "", "losses": result.losses}
    metrics = result.to_dict()
    metrics.update(
        params=params, device=device, build_seconds=build_seconds,
        wall_seconds=time.perf_counter() - began, smoke_loss=smoke_loss,
        peak_memory=(int(torch.cuda.max_memory_allocated()) if cuda else _peak_rss()),
        peak_memory_kind="cuda allocated" if cuda else "process resident set",
    )
    return {"status": "scored", "metrics": metrics}
