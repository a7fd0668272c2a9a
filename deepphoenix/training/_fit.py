"""Training a program's model: its own ``train(model, ctx)`` when it defines one, else the
built-in loop. Runs inside a worker; imports torch when called.

The built-in loop is the one both the proposer's training stage and the few-shot score
have always used: the program's optimizer (AdamW by default) at its learning rate and
weight decay, dynamic padding, gradient clipping at 1.0, bf16 autocast on CUDA and none
on CPU, every step's loss recorded by the `TrainContext`.
"""

from __future__ import annotations

from typing import Any

from deepphoenix.training._context import FitResult, TrainContext
from deepphoenix.training._program import Dynamics, make_optimizer

__all__ = ["NoLossReported", "fit", "train_model"]


class NoLossReported(RuntimeError):
    """A program's train() returned without computing any loss through ctx.loss."""


def fit(model: Any, ctx: TrainContext, dynamics: Dynamics) -> FitResult:
    """The built-in loop over the context's budget."""
    import torch

    optimizer = make_optimizer(dynamics, model.parameters())
    model.train()
    for batch in ctx.batches():
        loss = ctx.loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return ctx.finish()


def train_model(model: Any, ctx: TrainContext, dynamics: Dynamics) -> FitResult:
    """Train with the program's own ``train(model, ctx)`` if it has one, else `fit`.

    Raises what the training raises (`NonFiniteLoss` for a NaN loss), and
    `NoLossReported` when a program's train() recorded nothing.
    """
    if dynamics.train is None:
        return fit(model, ctx, dynamics)
    model.train()
    dynamics.train(model, ctx)
    result = ctx.finish()
    if not result.losses:
        raise NoLossReported("train() computed no loss through ctx.loss(model, batch), so "
                             "there is nothing to score")
    return result
