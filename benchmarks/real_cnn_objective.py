"""The ResNet task of bench_real.py: a user's own objective for a CIFAR-style ResNet
(kuangliu/pytorch-cifar's `models/resnet.py`, shrunk), on images drawn here.

Ten classes of 32 x 32 RGB pictures, drawn procedurally and deterministically (nothing is
downloaded): a disc, a ring, a filled square, a square outline, a plus, an X, a
triangle, horizontal stripes, vertical stripes, a checkerboard; each at a random place
and size, in random colours on a random background, with pixel noise. The file defines
`model = ResNet(...)` at its end (ten outputs). The objective trains it for STEPS Adam
steps on fixed batches, measures batch norm's statistics again for the final weights,
and returns the validation loss (cross-entropy, eval mode) on images it never trained on,
and the accuracy; lower loss is better.

Self-contained on purpose: a run stores this file's text and runs only that, in a
sandboxed worker, so it imports nothing from the benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

CLASSES = ("disc", "ring", "square", "frame", "plus", "cross", "triangle", "hstripes",
           "vstripes", "checker")
SIZE = 32  # pixels a side, CIFAR's (the file's avg_pool2d(out, 4) expects it)
STEPS = 40  # Adam steps
BATCH = 32  # images per step
LR = 2e-3
VAL_IMAGES = 256  # held-out images scored at the end
BN_BATCHES = 8  # training batches batch norm's statistics are measured on at the end
NOISE = 0.35  # pixel noise (the background and shape colours differ by 0.3 to 0.8)
DATA_SEED = 4321  # the pictures and the batches: the same for every candidate and run


def draw_images(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` pictures (count, 3, SIZE, SIZE) in about -1..1 and their labels, the
    classes in turn; the same for the same `seed`."""
    g = torch.Generator().manual_seed(seed)

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(count, *shape, generator=g)

    labels = torch.arange(count) % len(CLASSES)
    cy, cx = uniform(10, SIZE - 10, 1, 1), uniform(10, SIZE - 10, 1, 1)
    radius = uniform(5, 9, 1, 1)
    period = uniform(3, 6, 1, 1)
    phase = uniform(0, 6, 1, 1)
    line = torch.arange(SIZE, dtype=torch.float32)
    y, x = line[None, :, None], line[None, None, :]
    dy, dx = y - cy, x - cx
    ay, ax = dy.abs(), dx.abs()
    dist = (dy.square() + dx.square()).sqrt()
    edge = 0.8 * radius
    box = torch.maximum(ay, ax)
    masks = torch.stack([
        dist <= radius,
        (dist <= radius) & (dist >= radius - 2.5),
        box <= edge,
        (box <= edge) & (box >= edge - 2),
        ((ax <= 1.5) & (ay <= radius)) | ((ay <= 1.5) & (ax <= radius)),
        ((ax - ay).abs() <= 1.5) & (box <= edge),
        (dy.abs() <= edge) & (ax <= (dy + edge) / 2),
        torch.remainder(((y + phase) / period).floor(), 2).expand(-1, SIZE, SIZE) == 0,
        torch.remainder(((x + phase) / period).floor(), 2).expand(-1, SIZE, SIZE) == 0,
        torch.remainder(((y + phase) / period).floor() + ((x + phase) / period).floor(),
                        2) == 0,
    ], dim=1)  # (count, classes, SIZE, SIZE)
    mask = masks[torch.arange(count), labels].float()[:, None]
    background = uniform(-0.6, 0.6, 3, 1, 1)
    sign = torch.where(torch.rand(count, 1, 1, 1, generator=g) < 0.5, -1.0, 1.0)
    foreground = background + sign * uniform(0.3, 0.8, 3, 1, 1)
    images = background + mask * (foreground - background)
    images = images + NOISE * torch.randn(count, 3, SIZE, SIZE, generator=g)
    return images, labels


def evaluate(program: Mapping[str, Any], ctx: Any) -> dict[str, float]:
    model = program["model"].to(ctx.device)
    images, labels = draw_images(STEPS * BATCH + VAL_IMAGES, DATA_SEED)
    train_x, train_y = images[:STEPS * BATCH], labels[:STEPS * BATCH]
    order = torch.randperm(STEPS * BATCH, generator=torch.Generator().manual_seed(DATA_SEED))
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    model.train()
    train_loss, steps = float("nan"), 0
    for step in range(STEPS):
        pick = order[step * BATCH:(step + 1) * BATCH]
        loss = F.cross_entropy(model(train_x[pick].to(ctx.device)), train_y[pick].to(ctx.device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        train_loss, steps = loss.item(), step + 1
        ctx.report(steps, train_loss)
        if ctx.should_stop():  # --fidelity asha: this rung's steps are spent
            break
    with torch.no_grad():
        # Batch norm's running statistics lag behind weights that moved fast in few
        # steps; measured again on training pictures for the final weights ("precise
        # BN"), the validation loss measures the model rather than its last batches.
        norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a plain average over the batches below
        for step in range(BN_BATCHES):
            model(train_x[order[step * BATCH:(step + 1) * BATCH]].to(ctx.device))
        model.eval()
        logits = model(images[STEPS * BATCH:].to(ctx.device))
        target = labels[STEPS * BATCH:].to(ctx.device)
        val_loss = F.cross_entropy(logits, target)
        accuracy = (logits.argmax(dim=1) == target).float().mean()
    return {"score": val_loss.item(), "accuracy": accuracy.item(), "train_loss": train_loss,
            "steps": steps}
