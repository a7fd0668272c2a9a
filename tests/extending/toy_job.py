"""A job of one's own, written against the public worker-side façade only
(`deepphoenix.sandbox`): it scores the length of a text and reports its progress."""

from __future__ import annotations

from typing import Any

from deepphoenix.sandbox import EvalReport, JobContext, failure_text


def score_length(args: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    ctx.progress(stage="objective")
    try:
        text = str(args["text"])
        if not text:
            raise ValueError("an empty text has no score")
    except (KeyError, ValueError) as exc:
        message, trace = failure_text(exc)
        return EvalReport.failed("objective", message, trace).to_dict()
    return EvalReport.scored(float(len(text)), {"device": ctx.device()}).to_dict()
