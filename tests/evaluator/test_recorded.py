"""What a job's result becomes in the run database: processes a candidate left behind are
counted with it, whatever the job's ending."""

from __future__ import annotations

from deepphoenix.evaluator import EvalStatus
from deepphoenix.evaluator._evaluator import _to_result
from deepphoenix.sandbox import JobResult, JobStatus


def test_leftover_processes_are_counted_with_the_candidate() -> None:
    scored = JobResult(JobStatus.OK, value={"status": "scored", "score": 0.5,
                                            "metrics": {"params": 10}}, leftovers=7)
    result = _to_result("h", scored, "fewshot")
    assert result.status is EvalStatus.SCORED
    assert result.metrics == {"params": 10, "leftover_processes": 7}
    timed_out = _to_result("h", JobResult(JobStatus.TIMEOUT, error="timed out", leftovers=2),
                           "fewshot")
    assert timed_out.status is EvalStatus.FAILED
    assert timed_out.metrics == {"leftover_processes": 2}
    clean = _to_result("h", JobResult(JobStatus.OK, value={"status": "scored", "score": 0.5,
                                                           "metrics": {}}), "fewshot")
    assert "leftover_processes" not in clean.metrics
