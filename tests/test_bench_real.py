"""benchmarks/bench_real.py's report: records of several files make one table, and a row
counts the seeds on which it beat tpe and gp both."""

from __future__ import annotations

from typing import Any

from tests.benchmarks import load_bench


def _bench() -> Any:
    return load_bench("bench_real")


def _record(proposer: str, seed: int, best: float, commit: str = "a") -> dict[str, Any]:
    return {"task": "nanogpt", "proposer": proposer, "arm": "free", "seed": seed,
            "cap": None, "commit": commit, "best": best, "seed_score": 3.0,
            "best_params": 100, "scored": 25, "failed": 0, "outcomes": {"ok": 24},
            "over_cap_evaluated": 0, "checked_out": 0, "redraws": 0, "slots_lost": 0,
            "first_proposal": 1.0, "wall": 10.0, "eval_seconds": 1.0}


def test_a_later_file_replaces_the_same_run_and_keeps_the_rest() -> None:
    bench = _bench()
    first = [_record("learned", 1, 2.9, "old"), _record("learned", 2, 2.8, "old"),
             _record("gp", 1, 2.5)]
    later = [_record("learned", 1, 2.4, "new"), _record("learned", 3, 2.6, "new")]
    combined = bench.combine(first, later)
    by_key = {(r["proposer"], r["seed"]): r for r in combined}
    assert len(combined) == 4
    assert by_key[("learned", 1)]["commit"] == "new"
    assert by_key[("learned", 2)]["commit"] == "old"
    assert by_key[("learned", 3)]["best"] == 2.6
    assert by_key[("gp", 1)]["best"] == 2.5


def test_the_row_counts_seeds_better_than_tpe_and_gp_both() -> None:
    bench = _bench()
    records = [_record("tpe", s, b) for s, b in ((1, 2.5), (2, 2.5), (3, 2.4))]
    records += [_record("gp", s, b) for s, b in ((1, 2.6), (2, 2.3), (3, 2.5))]
    # better than tpe on 1 and 2, than gp on 1 and 3: better than both on seed 1 only
    records += [_record("learned", s, b) for s, b in ((1, 2.2), (2, 2.4), (3, 2.45))]
    row = next(line for line in bench.report(records).splitlines()
               if line.startswith("| learned | off |"))
    assert "| 2/3 · 2/3 · 1/3 |" in row
