"""A user objective for the coordinate / one-hot weight quines that scores a recipe over
several initialisations instead of one: the mean of log10(relative error) over SEEDS
initialisation seeds derived from the run's (a trivial quine counts as relative error
1, no better than the weights' mean). A recipe that replicates from one lucky
initialisation scores no better than its other seeds let it. Lower is better (the
default direction).

    deepphoenix run --preset quine-cpu --source q.py \\
        --objective benchmarks/quine_seeds_objective.py:evaluate

Each seed trains a fresh ``WeightQuine`` of the program (its size, query and norm) with
the program's own ``train`` and is scored by the self-replication objective's code. The
per-seed relative errors are returned as metrics (``relative_error_0``, ...), with how
many reach 1e-6 (``reached``).
"""

import math
from collections.abc import Mapping
from typing import Any

import torch

from deepphoenix.objectives._replication import TrivialQuine, replication_scores

SEEDS = 3
TARGET = 1e-6


def evaluate(program: Mapping[str, Any], ctx: Any) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    logs = []
    for index in range(SEEDS):
        torch.manual_seed(ctx.seed * 1000 + index)
        model = program["WeightQuine"](program["size"], program["query"], program["norm"])
        before = float(model.weight.detach().double().pow(2).mean().sqrt())
        program["train"](model, None)
        try:
            relative = replication_scores(program["replicate"](model), before)["relative_error"]
        except TrivialQuine:
            relative = 1.0
        metrics[f"relative_error_{index}"] = relative
        logs.append(math.log10(max(relative, 1e-12)))
        ctx.report(index, relative)
    metrics["reached"] = sum(metrics[f"relative_error_{i}"] <= TARGET for i in range(SEEDS))
    return {"score": sum(logs) / len(logs), **metrics}

