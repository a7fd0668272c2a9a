"""benchmarks/bench_search.py's report: the equal-wall columns can be read against any row
(issue 31 asks for the time to `gp`'s median best), and wins against any rows."""

from __future__ import annotations

from typing import Any

from tests.benchmarks import load_bench


def _bench() -> Any:
    return load_bench("bench_search")


def _record(row: str, seed: int, best: float, curve: list[list[float]],
            seconds: float) -> dict[str, Any]:
    return {"preset": "cpu", "row": row, "seed": seed, "proposer": row, "strategy": "greedy",
            "commit": "a", "wall": seconds + 3, "run_seconds": seconds, "best": best,
            "seed_score": 4.0, "best_params": 1000, "evaluations": 37,
            "direction": "minimize", "curve": curve, "early": best,
            "sites_changed": {"1": 1, "2": 0, "3+": 0}}


def test_the_reference_row_sets_the_equal_wall_columns() -> None:
    bench = _bench()
    results = [
        _record("gp", 1, 3.0, [[10.0, 4.0], [100.0, 3.0]], 200.0),
        _record("gp", 2, 3.2, [[10.0, 4.0], [150.0, 3.2]], 300.0),
        _record("learned", 1, 2.9, [[10.0, 4.0], [50.0, 3.05], [60.0, 2.9]], 400.0),
        _record("learned", 2, 3.3, [[10.0, 4.0], [500.0, 3.3]], 600.0),
    ]
    table = bench.report(results, reference="gp", versus=("gp", "learned"))
    assert "time to gp's median best (3.100)" in table
    assert "best by gp's median run time (250 s)" in table
    assert "seeds better than gp / learned" in table
    learned = next(line for line in table.splitlines() if line.startswith("| learned |"))
    # learned reached gp's median best (3.1) at 50 s (3.05) on seed 1, never on seed 2; it beat gp
    # on seed 1 only; by gp's median run time (250 s) its bests were 2.9 and 4.0
    assert "50 s (1/2 seeds)" in learned
    assert "| 1 / 0 of 2 |" in learned
    assert "| 3.450 |" in learned
    # the default stays tpe's: with no tpe row, those columns have nothing to read
    assert "time to tpe's median best" in bench.report(results)
