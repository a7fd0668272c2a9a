"""What an evaluation worker imports before its first job: nothing for a program and an
objective that use only the standard library, torch and transformers otherwise; and a
worker without them still runs (and seeds) a program that imports torch itself."""

from __future__ import annotations

import os

import pytest

from deepphoenix.evaluator import TORCH_PRELOAD, EvalSettings, evaluation_preload
from deepphoenix.objectives import ObjectiveSpec, resolve_objective
from deepphoenix.sandbox import NamedJob, Worker, WorkerSettings
from deepphoenix.sandbox._child import _GPU_DEVICES

DIAG = "deepphoenix.sandbox._diagnostics"
PLAIN = "import math\nwidth = 3\nrate = math.sqrt(0.25)\n"
OBJECTIVE = ("import random\n\ndef evaluate(program, ctx):\n"
             "    return float(program['rate']) + random.Random(ctx.seed).random()\n")


def _user(text: str) -> ObjectiveSpec:
    return ObjectiveSpec("score.py:evaluate", function="evaluate", text=text,
                         origin="score.py")


@pytest.mark.parametrize(("program", "objective", "expected"), [
    (PLAIN, OBJECTIVE, ()),
    ("from collections import OrderedDict\nx = 1\n", OBJECTIVE, ()),
    ("import numpy\nx = 1\n", OBJECTIVE, TORCH_PRELOAD),  # outside the standard library
    ("import torch.nn as nn\nx = 1\n", OBJECTIVE, TORCH_PRELOAD),
    ("x = transformers.T5Config()\n", OBJECTIVE, TORCH_PRELOAD),  # named, not imported
    ("from . import sibling\n", OBJECTIVE, TORCH_PRELOAD),  # relative: unknown
    ("x = __import__('torch')\n", OBJECTIVE, TORCH_PRELOAD),  # dynamic
    ("import importlib\nx = 1\n", OBJECTIVE, TORCH_PRELOAD),
    ("x = (\n", OBJECTIVE, TORCH_PRELOAD),  # does not parse
    (PLAIN, "import torch\n\ndef evaluate(program, ctx):\n    return 0.0\n", TORCH_PRELOAD),
    (PLAIN, "def evaluate(program, ctx):\n    import sklearn\n    return 0.0\n",
     TORCH_PRELOAD),
])
def test_user_objective_preload_follows_the_imports(program: str, objective: str,
                                                    expected: tuple[str, ...]) -> None:
    assert evaluation_preload(_user(objective), program) == expected


def test_builtin_and_shipped_objectives_preload_torch() -> None:
    assert evaluation_preload(resolve_objective("fewshot"), PLAIN) == TORCH_PRELOAD
    assert evaluation_preload(resolve_objective("self-replication"), PLAIN) == TORCH_PRELOAD
    shipped = ObjectiveSpec("f", function="f", pickled="AAAA")
    assert evaluation_preload(shipped, PLAIN) == TORCH_PRELOAD


def _score(worker: Worker, settings: EvalSettings, source: str) -> float:
    result = worker.run(settings.job(source), timeout=300)
    assert result.ok, result.error
    assert result.value["status"] == "scored", result.value
    return float(result.value["score"])


def _loaded(worker: Worker) -> list[str]:
    found = worker.run(f"{DIAG}:modules", {"names": list(TORCH_PRELOAD)})
    assert found.ok, found.error
    assert found.value["device"] in ("cpu", "cuda")
    return list(found.value["loaded"])


def test_a_worker_without_torch_scores_plain_and_torch_programs_alike() -> None:
    objective = _user(OBJECTIVE.replace("program['rate']", "program['rate'] + program.get("
                                        "'noise', 0.0)"))
    settings = EvalSettings(objective=objective, seed=7, timeout=300.0)
    seeded = "import torch\nwidth = 3\nrate = 0.5\nnoise = float(torch.rand(1))\n"
    bare = WorkerSettings(threads=1, preload=(), extra_jobs=(f"{DIAG}:*",))
    with Worker(bare, name="bare") as worker:
        plain = _score(worker, settings, PLAIN)
        assert _loaded(worker) == []  # the plain program and objective never needed torch
        if not any(os.path.exists(p) for p in _GPU_DEVICES):  # "auto" was answered without
            assert _loaded(worker) == []  # importing torch to look for a GPU
        late = _score(worker, settings, seeded)  # torch imported now, after the audit hook
        # ... in the evaluation's own process, which took it with it (docs/sandbox.md)
        assert _loaded(worker) == []
        for isolated in (False, True):  # the hook holds in the loop and in a job's process
            blocked = worker.run(NamedJob(f"{DIAG}:connect", {"host": "127.0.0.1",
                                                                "port": 9}, isolated=isolated))
            assert blocked.ok and not blocked.value["connected"]
    full = WorkerSettings(threads=1, preload=TORCH_PRELOAD, extra_jobs=(f"{DIAG}:*",))
    with Worker(full, name="full") as worker:
        assert _score(worker, settings, PLAIN) == plain
        # torch is seeded with the evaluation seed before each program runs, either way
        assert _score(worker, settings, seeded) == late
        assert _score(worker, settings, seeded) == late
