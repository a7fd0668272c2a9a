"""The nanoGPT task of bench_real.py: a user's own objective for nanoGPT's `model.py`, as
the user guide's walk-through writes it (`score.py`).

Next-byte prediction on Python source the machine already has: a fixed list of the
standard library's own files, read from this Python's installation (nothing is
downloaded; the sandbox shows the installation read-only). The file defines `model =
GPT(GPTConfig())` at its end, with a vocabulary of 256 (bytes). The objective trains
it for STEPS AdamW steps on fixed batches and returns its validation loss (mean
cross-entropy in nats per byte, eval mode) on bytes it never trained on; lower is better.

Self-contained on purpose: a run stores this file's text and runs only that, in a
sandboxed worker, so it imports nothing from the benchmark.
"""

from __future__ import annotations

import sysconfig
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

STEPS = 60  # AdamW steps
BATCH = 16  # sequences per step
CONTEXT = 64  # bytes a sequence reads (less when the model's block_size is smaller)
LR = 2e-3
VAL_SEQUENCES = 64  # held-out windows scored at the end
DATA_SEED = 1234  # the batches: the same for every candidate and every run
# Standard-library modules of plain Python, present in every CPython 3.11+ install.
FILES = ("argparse.py", "textwrap.py", "difflib.py", "pprint.py", "heapq.py", "bisect.py",
         "fractions.py", "statistics.py", "dataclasses.py", "string.py", "shlex.py",
         "calendar.py")


def text_bytes() -> torch.Tensor:
    """The corpus: the files' bytes, one after another, as int64 ids in 0..255."""
    folder = Path(sysconfig.get_paths()["stdlib"])
    data = b"".join((folder / name).read_bytes() for name in FILES)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).long()


def evaluate(program: Mapping[str, Any], ctx: Any) -> dict[str, float]:
    model = program["model"].to(ctx.device)
    context = min(CONTEXT, model.config.block_size)
    data = text_bytes()
    split = int(len(data) * 0.9)
    train, held = data[:split], data[split:]
    draw = torch.Generator().manual_seed(DATA_SEED)
    window = torch.arange(context + 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.1)
    model.train()
    train_loss, steps = float("nan"), 0
    for step in range(STEPS):
        starts = torch.randint(0, len(train) - context - 1, (BATCH,), generator=draw)
        chunk = train[starts[:, None] + window].to(ctx.device)
        _, loss = model(chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        train_loss, steps = loss.item(), step + 1
        ctx.report(steps, train_loss)
        if ctx.should_stop():  # --fidelity asha: this rung's steps are spent
            break
    # Held-out windows side by side, the same bytes for every context length.
    starts = torch.linspace(0, len(held) - CONTEXT - 1, VAL_SEQUENCES).long()
    chunk = held[starts[:, None] + window].to(ctx.device)
    model.eval()
    with torch.no_grad():
        _, val_loss = model(chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous())
    return {"score": val_loss.item(), "train_loss": train_loss, "steps": steps}
