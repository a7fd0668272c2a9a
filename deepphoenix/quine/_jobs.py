"""The ouroboros's worker job: train one generation of a source quine with its own
``train()``, and return what its model prints with the replication scores. Runs only in
a sandbox worker; the parent never executes the printed text."""

from __future__ import annotations

import shutil
import time
from typing import Any

from deepphoenix.objectives import (
    ObjectiveContext,
    printed_text,
    replication_scores,
    train_and_replicate,
)
from deepphoenix.sandbox import GenerationJob, JobContext, failure_text
from deepphoenix.status import VariantStatus
from deepphoenix.training import exec_program

__all__ = ["generation_job"]


def generation_job(job: GenerationJob, ctx: JobContext) -> dict[str, Any]:
    """``{"status": "scored", "score", "metrics", "printed"}`` or ``{"status": "failed",
    "stage", "reason", "traceback"}``; never raises for the program's failure."""
    began = time.monotonic()
    ctx.progress(stage="build")
    workdir = ctx.workspace / "generation"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir()
    try:
        program = exec_program(job.source, ctx.workspace, job.seed)
        ctx.progress(stage="objective")
        context = ObjectiveContext(ctx.device(), job.seed, workdir,
                                   lambda step, value: ctx.progress(step=step, value=value),
                                   deadline=began + 0.75 * job.timeout)
        pair, before, metrics = train_and_replicate(program, context)
        scores = replication_scores(pair, before)
        if "char_accuracy" not in scores:
            return {"status": VariantStatus.FAILED.value, "stage": "objective", "traceback": "",
                    "reason": "replicate(model) returned weights, not characters: the "
                              "ouroboros needs a source quine"}
        printed = printed_text(pair[0])
    except BaseException as exc:
        message, trace = failure_text(exc)
        return {"status": VariantStatus.FAILED.value, "stage": "objective", "reason": message,
                "traceback": trace}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    metrics.update(scores, wall_seconds=time.monotonic() - began)
    return {"status": VariantStatus.SCORED.value, "score": scores["score"], "metrics": metrics,
            "printed": printed}
