"""Tasks: how rows of a run's data become batches, and the trusted losses computed on them.
Runs inside a worker; imports torch when called.

- ``refinement`` (the paper): seq2seq code refinement. A row is ``(input_ids, labels)``;
  inputs are padded with 0 (attention mask 0), labels with -100 (ignored).
- ``code-lm``: byte-level language modelling of source code. A row is a block of
  ``block_size + 1`` byte values; the model reads the first ``block_size`` and predicts
  each next byte.

Losses are computed here from the model's logits, never taken from the model: a program
cannot report its own loss. The held-out loss runs the model in eval mode without
gradients, and scores position ``t`` from an input that ends at ``t`` (the decoder input
for seq2seq, the block prefix for a language model), so a model that attends to future
tokens gains nothing from it, and neither does one that turns dropout off.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TASKS", "Batch", "Task", "TaskError", "get_task", "load_rows"]

IGNORE = -100
HELDOUT_POSITIONS = 32  # positions scored per held-out row, evenly spaced


class TaskError(ValueError):
    """The model's output does not fit the task (wrong shape, no logits)."""


@dataclass(frozen=True, slots=True, eq=False)
class Batch:
    """A batch handed out by a `TrainContext`: its place in the budget and its tensors."""

    index: int
    size: int
    tokens: int
    tensors: dict[str, Any] = field(repr=False)
    owner: object = field(repr=False, default=None)


class Task:
    name = "task"

    def collate(self, rows: Sequence[Any], device: str) -> dict[str, Any]:
        raise NotImplementedError

    def tokens(self, rows: Sequence[Any]) -> int:
        raise NotImplementedError

    def loss(self, model: Any, tensors: dict[str, Any]) -> Any:
        raise NotImplementedError

    def prefix_logits(self, model: Any, tensors: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
        """(logits, targets) of the scored positions of a batch, each position's logits
        from an input that ends there."""
        raise NotImplementedError

    def heldout_loss(self, model: Any, rows: Sequence[Any], device: str,
                     batch_size: int) -> float:
        """The mean loss per scored token of `rows`, in eval mode, without gradients."""
        import torch

        total, count = 0.0, 0
        model.eval()
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                tensors = self.collate(rows[start:start + batch_size], device)
                for logits, target in self.prefix_logits(model, tensors):
                    total += float(_cross_entropy(logits, target, "sum"))
                    count += int((target != IGNORE).sum())
        return total / count if count else float("nan")


def _logits(output: Any) -> Any:
    import torch

    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, tuple | list) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    raise TaskError(f"the model returned a {type(output).__name__}; expected logits "
                    "(a tensor, a tuple starting with one, or an object with .logits)")


def _cross_entropy(logits: Any, target: Any, reduction: str = "mean") -> Any:
    from torch.nn import functional

    if logits.dim() < 2 or logits.shape[:-1] != target.shape:
        raise TaskError(f"the model's logits have shape {tuple(logits.shape)}; expected "
                        f"{(*tuple(target.shape), 'vocab')}")
    return functional.cross_entropy(logits.reshape(-1, logits.size(-1)).float(),
                                    target.reshape(-1), ignore_index=IGNORE,
                                    reduction=reduction)


class Seq2SeqTask(Task):
    """Code refinement: a transformers encoder-decoder, teacher-forced."""

    name = "refinement"

    def collate(self, rows: Sequence[Any], device: str) -> dict[str, Any]:
        import torch

        width_in = max(len(x) for x, _ in rows)
        width_out = max(len(y) for _, y in rows)
        input_ids = torch.zeros((len(rows), width_in), dtype=torch.long)
        mask = torch.zeros((len(rows), width_in), dtype=torch.long)
        target = torch.full((len(rows), width_out), IGNORE, dtype=torch.long)
        for row, (x, y) in enumerate(rows):
            input_ids[row, : len(x)] = torch.tensor(x)
            mask[row, : len(x)] = 1
            target[row, : len(y)] = torch.tensor(y)
        return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device),
                "labels": target.to(device)}

    def tokens(self, rows: Sequence[Any]) -> int:
        return sum(len(x) + len(y) for x, y in rows)

    def loss(self, model: Any, tensors: dict[str, Any]) -> Any:
        output = model(**tensors)
        return _cross_entropy(_logits(output), tensors["labels"])

    def prefix_logits(self, model: Any, tensors: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
        import torch

        labels = tensors["labels"]
        decoder_input = torch.zeros_like(labels)  # the decoder starts from pad (0)
        decoder_input[:, 1:] = labels[:, :-1].clamp(min=0)
        inputs: dict[str, Any] = {"attention_mask": tensors["attention_mask"]}
        if hasattr(model, "get_encoder"):  # encode once, decode every prefix
            inputs["encoder_outputs"] = model.get_encoder()(
                input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"])
        else:
            inputs["input_ids"] = tensors["input_ids"]
        for position in _positions(labels.shape[1]):
            output = model(**inputs, decoder_input_ids=decoder_input[:, :position + 1])
            yield _logits(output)[:, -1], labels[:, position]


class LanguageModelTask(Task):
    """Next-byte prediction over blocks of source code: ``model(idx)`` gives logits."""

    name = "code-lm"

    def collate(self, rows: Sequence[Any], device: str) -> dict[str, Any]:
        import torch

        block = torch.tensor([list(r) for r in rows], dtype=torch.long)
        return {"idx": block[:, :-1].to(device), "targets": block[:, 1:].to(device)}

    def tokens(self, rows: Sequence[Any]) -> int:
        return sum(len(r) - 1 for r in rows)

    def loss(self, model: Any, tensors: dict[str, Any]) -> Any:
        return _cross_entropy(_logits(model(tensors["idx"])), tensors["targets"])

    def prefix_logits(self, model: Any, tensors: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
        idx, targets = tensors["idx"], tensors["targets"]
        for position in _positions(idx.shape[1]):
            yield _logits(model(idx[:, :position + 1]))[:, -1], targets[:, position]


def _positions(length: int) -> list[int]:
    """Up to `HELDOUT_POSITIONS` positions in 0..length-1, evenly spaced, always the last."""
    if length <= HELDOUT_POSITIONS:
        return list(range(length))
    step = length / HELDOUT_POSITIONS
    return sorted({min(length - 1, int((i + 1) * step) - 1) for i in range(HELDOUT_POSITIONS)})


TASKS: dict[str, type[Task]] = {"refinement": Seq2SeqTask, "code-lm": LanguageModelTask}


def get_task(name: str) -> Task:
    return TASKS[name]()


def load_rows(path: str | Path, cache: dict[str, Any]) -> list[Any]:
    """A run's rows (written by the parent), kept in `cache` (the worker's state) so that
    each worker reads and converts them once per run: ``(input_ids, labels)`` pairs for
    the refinement task, byte blocks for code-lm."""
    key = str(Path(path).resolve())
    found = cache.get(key)
    if found is None:
        data = json.loads(Path(path).read_text())
        if "blocks" in data:
            found = data["blocks"]
        else:
            found = list(zip(data["input_ids"], data["labels"], strict=True))
        cache.clear()  # one run's data at a time
        cache[key] = found
    return list(found)
