"""The synthetic objective of `bench_async.py`: a cheap function of the site values plus a
random sleep, so a benchmark measures the search loop's scheduling (how busy it keeps the
workers), not training. Run as a user objective::

    deepphoenix run --source benchmarks/synthetic_program.py \\
        --grammar benchmarks/synthetic.toml \\
        --objective benchmarks/synthetic_objective.py:evaluate ...

The sleep is uniform in [LOW, HIGH] seconds (1 to 3; workers get a scrubbed environment,
so `bench_async.py --sleep` writes a copy with other bounds), drawn from a generator
seeded by the site values: the same candidate always
takes the same time, different ones differ, as real candidates of different sizes do. The
score (minimized) is the distance to width 17 and rate 0.3; a learning curve of ``steps``
reports lets ``--fidelity asha`` stop it early (``--max-steps 9``), each step taking a
ninth of the sleep.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from typing import Any

LOW, HIGH = 1.0, 3.0
STEPS = 9


def evaluate(program: Mapping[str, Any], ctx: Any) -> float:
    rng = random.Random(f"{program['width']}:{program['rate']!r}")
    pause = rng.uniform(LOW, HIGH) / STEPS
    target = (program["width"] - 17) ** 2 / 100 + (program["rate"] - 0.3) ** 2
    value = target
    for step in range(1, STEPS + 1):
        time.sleep(pause)
        value = target + 1.0 / step
        ctx.report(step, value)
        if ctx.should_stop():
            break
    return value
