"""The one training loop, used by the proposer's training stage and the few-shot score.
Runs inside a worker; imports torch when called.

Teacher-forced seq2seq: AdamW, dynamic padding (inputs padded with 0, labels with -100),
gradient clipping at 1.0, bf16 autocast on CUDA and none on CPU, the loss of every step
kept. The data order is fixed by `seed` (or the dataset order when `shuffle` is off), so
two models differ only in their code.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FitResult", "fit", "load_tokens"]

_IGNORE = -100


@dataclass
class FitResult:
    losses: list[float] = field(default_factory=list)
    steps: int = 0
    samples: int = 0
    tokens: int = 0
    seconds: float = 0.0
    stopped: str = ""  # why it ended early: "time budget", "non-finite loss: nan at step 3"

    @property
    def mean_loss(self) -> float:
        return sum(self.losses) / len(self.losses) if self.losses else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "losses": self.losses, "steps": self.steps, "samples": self.samples,
            "tokens": self.tokens, "seconds": self.seconds, "stopped": self.stopped,
            "mean_loss": self.mean_loss,
            "sum_loss": sum(self.losses),
            "final_loss": self.losses[-1] if self.losses else float("nan"),
            "tokens_per_s": self.tokens / self.seconds if self.seconds > 0 else 0.0,
        }


def load_tokens(path: str | Path, cache: dict[str, Any]) -> tuple[list[list[int]],
                                                                    list[list[int]]]:
    """The tokenized dataset written by the parent, kept in `cache` (the worker's state),
    so each worker reads and converts it once per run."""
    key = str(Path(path).resolve())
    found = cache.get(key)
    if found is None:
        data = json.loads(Path(path).read_text())
        found = (data["input_ids"], data["labels"])
        cache.clear()  # one run's data at a time
        cache[key] = found
    return found


def _batch(inputs: list[list[int]], labels: list[list[int]], device: str) -> dict[str, Any]:
    import torch

    width_in = max(len(x) for x in inputs)
    width_out = max(len(y) for y in labels)
    input_ids = torch.zeros((len(inputs), width_in), dtype=torch.long)
    mask = torch.zeros((len(inputs), width_in), dtype=torch.long)
    target = torch.full((len(labels), width_out), _IGNORE, dtype=torch.long)
    for row, (x, y) in enumerate(zip(inputs, labels, strict=True)):
        input_ids[row, : len(x)] = torch.tensor(x)
        mask[row, : len(x)] = 1
        target[row, : len(y)] = torch.tensor(y)
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device),
            "labels": target.to(device)}


def fit(model: Any, inputs: list[list[int]], labels: list[list[int]], *, device: str,
        epochs: int = 1, batch_size: int = 16, lr: float = 1e-3, weight_decay: float = 0.01,
        seed: int = 0, shuffle: bool = True, max_seconds: float | None = None,
        max_steps: int | None = None, stop_on_nan: bool = True,
        on_step: Callable[[int, int, float], None] | None = None) -> FitResult:
    """Train `model` in place; return every step's loss and the totals."""
    import torch

    result = FitResult()
    count = len(inputs)
    if count == 0:
        return result
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    autocast: contextlib.AbstractContextManager[Any] = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda")
        else contextlib.nullcontext()
    )
    per_epoch = math.ceil(count / batch_size)
    total = per_epoch * epochs if max_steps is None else min(max_steps, per_epoch * epochs)
    model.train()
    began = time.perf_counter()
    for _epoch in range(epochs):
        order = (torch.randperm(count, generator=generator).tolist() if shuffle
                 else list(range(count)))
        for start in range(0, count, batch_size):
            rows = order[start:start + batch_size]
            batch = _batch([inputs[i] for i in rows], [labels[i] for i in rows], device)
            with autocast:
                loss = model(**batch).loss
            value = float(loss.detach().float().item())
            if not math.isfinite(value):
                result.losses.append(value)
                result.steps += 1
                result.stopped = f"non-finite loss: {value} at step {result.steps}"
                if stop_on_nan:
                    result.seconds = time.perf_counter() - began
                    return result
                continue
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            result.losses.append(value)
            result.steps += 1
            result.samples += len(rows)
            result.tokens += sum(len(inputs[i]) + len(labels[i]) for i in rows)  # no sync
            if on_step is not None:
                on_step(result.steps, total, value)
            elapsed = time.perf_counter() - began
            if max_seconds is not None and elapsed > max_seconds:
                result.stopped = f"time budget of {max_seconds:g} s"
                result.seconds = elapsed
                return result
            if max_steps is not None and result.steps >= max_steps:
                result.stopped = f"step budget of {max_steps}"
                result.seconds = elapsed
                return result
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    result.seconds = time.perf_counter() - began
    return result
