"""`TrainContext`: what a training loop gets — the data budget, the trusted loss, the
device — and what it records. The built-in loop and a program's own ``train(model, ctx)``
use the same one, so the score always comes from the same trusted code.

A program's ``train()`` is written like this::

    def train(model, ctx):
        opt = torch.optim.AdamW(model.parameters(), lr=lr)
        for batch in ctx.batches():          # the run's data and budget, fixed order
            loss = ctx.loss(model, batch)    # computed and recorded by deepphoenix
            opt.zero_grad()
            loss.backward()
            opt.step()

`batches()` yields the whole budget once (the few-shot run: one epoch over the run's first
N samples; the proposer's training stage: its epochs); a second call yields nothing.
`loss()` computes the task's loss from the model's logits and records the first loss of
each batch: those records are the training curve and the few-shot score. A non-finite
loss raises `NonFiniteLoss`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from deepphoenix.training._tasks import Batch, Task

__all__ = ["FitResult", "NonFiniteLoss", "TrainContext", "autocast"]


def autocast(device: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA, nothing on CPU (so tiny configs run anywhere)."""
    import torch

    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class NonFiniteLoss(FloatingPointError):
    """A recorded loss was NaN or infinite."""


@dataclass
class FitResult:
    """What a training run did: every recorded loss and the totals."""

    losses: list[float] = field(default_factory=list)
    steps: int = 0
    samples: int = 0
    tokens: int = 0
    seconds: float = 0.0
    stopped: str = ""  # why it ended early: "time budget of 60 s"

    @property
    def mean_loss(self) -> float:
        return sum(self.losses) / len(self.losses) if self.losses else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "losses": self.losses, "steps": self.steps, "samples": self.samples,
            "tokens": self.tokens, "seconds": self.seconds, "stopped": self.stopped,
            "mean_loss": self.mean_loss, "sum_loss": sum(self.losses),
            "final_loss": self.losses[-1] if self.losses else float("nan"),
            "tokens_per_s": self.tokens / self.seconds if self.seconds > 0 else 0.0,
        }


class TrainContext:
    """The data budget and the trusted loss of one training run."""

    def __init__(self, task: Task, rows: Sequence[Any], *, device: str, seed: int,
                 batch_size: int, epochs: int = 1, shuffle: bool = False,
                 max_seconds: float | None = None,
                 on_step: Callable[[int, int, float], None] | None = None) -> None:
        self.task = task
        self.rows = rows
        self.device = device  # "cpu" or "cuda[:N]"
        self.seed = seed
        self.batch_size = batch_size
        self.epochs = epochs
        self.shuffle = shuffle
        self.max_seconds = max_seconds
        self.on_step = on_step
        self.result = FitResult()
        self._spent = False
        self._recorded: set[int] = set()
        self._began = time.perf_counter()

    @property
    def total_steps(self) -> int:
        return math.ceil(len(self.rows) / self.batch_size) * self.epochs

    def batches(self) -> Iterator[Batch]:
        """The whole budget, once: `epochs` passes over the rows (in order, or shuffled by
        `seed`), stopping early at `max_seconds`."""
        if self._spent:
            return
        self._spent = True
        import torch

        generator = torch.Generator().manual_seed(self.seed)
        index = 0
        for _epoch in range(self.epochs):
            order = (torch.randperm(len(self.rows), generator=generator).tolist()
                     if self.shuffle else range(len(self.rows)))
            order = list(order)
            for start in range(0, len(order), self.batch_size):
                elapsed = time.perf_counter() - self._began
                if self.max_seconds is not None and index and elapsed > self.max_seconds:
                    self.result.stopped = f"time budget of {self.max_seconds:g} s"
                    return
                rows = [self.rows[i] for i in order[start:start + self.batch_size]]
                yield Batch(index, len(rows), self.task.tokens(rows),
                            self.task.collate(rows, self.device), owner=self)
                index += 1

    def loss(self, model: Any, batch: Batch) -> Any:
        """The task's loss of `model` on `batch` (a tensor to backpropagate); the first
        loss computed for each batch is recorded."""
        if not isinstance(batch, Batch) or batch.owner is not self:
            raise TypeError("ctx.loss takes a batch from this ctx.batches()")
        with autocast(self.device):
            loss = self.task.loss(model, batch.tensors)
        if batch.index in self._recorded:
            return loss
        self._recorded.add(batch.index)
        value = float(loss.detach().float().item())
        r = self.result
        r.losses.append(value)
        r.steps += 1
        if not math.isfinite(value):
            r.stopped = f"non-finite loss: {value} at step {r.steps}"
            raise NonFiniteLoss(r.stopped)
        r.samples += batch.size
        r.tokens += batch.tokens
        if self.on_step is not None:
            self.on_step(r.steps, self.total_steps, value)
        return loss

    def report(self, step: int, value: float) -> None:
        """An intermediate value for progress displays (not recorded as a loss)."""
        if self.on_step is not None:
            self.on_step(int(step), self.total_steps, float(value))

    def finish(self) -> FitResult:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
        self.result.seconds = time.perf_counter() - self._began
        return self.result
