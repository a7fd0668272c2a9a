"""Run the write-up's own quine files (evanfletcher42/neural-quines, fetched separately;
never part of this repository) headless, with one difference at a time, to find which
difference from our seeds explains a finding that does not reproduce.

    python benchmarks/bench_quines_writeup.py PATH/quine_onehot_matrix.py --seeds 1337 0 \\
        [--size 64] [--epochs 10000] [--change zero-grad]

The file is executed as it is except for: the seed of its ``torch.manual_seed(1337)``,
its ``self.linear_size``, its epoch count, its per-epoch print (dropped), matplotlib
(replaced by a stub that keeps what would be drawn), and the named `--change`s:

    zero-grad   ``optimizer.zero_grad()`` before every ``loss.backward()`` (ours zeroes)
    no-bias     the one-hot input projection without its bias (ours has none)
    optimizer-sees-regeneration   regeneration copies into the Parameter the optimizer
                holds, instead of assigning a new one (so gradient steps reach the model)

The figures are the ones its plot shows: the RMSE between the model's weights and their
prediction (after its training, i.e. the best epoch where the file keeps it), with the
weights' range and standard deviation. Lines are appended to --out as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
import time
import types
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import append_result, machine_header, read_results

CHANGES = {
    "zero-grad": [("loss.backward()", "optimizer.zero_grad(); loss.backward()")],
    "no-bias": [("bias=True", "bias=False")],
    "optimizer-sees-regeneration": [
        ("model.linear.weight = torch.nn.Parameter(y_pred_w)",
         "model.linear.weight.copy_(y_pred_w)")],
}


def _stub_matplotlib() -> list[Any]:
    """Replace matplotlib with a stub; the list gets the three axes the file draws on."""
    axes = [mock.Mock() for _ in range(3)]
    plt = types.ModuleType("matplotlib.pyplot")
    plt.subplots = lambda *a, **k: (mock.Mock(), axes)  # type: ignore[attr-defined]
    for name in ("colorbar", "suptitle", "show", "imshow", "plot", "figure"):
        setattr(plt, name, lambda *a, **k: None)
    package = types.ModuleType("matplotlib")
    package.pyplot = plt  # type: ignore[attr-defined]
    sys.modules["matplotlib"], sys.modules["matplotlib.pyplot"] = package, plt
    return axes


def run(path: Path, seed: int, size: int | None, epochs: int | None,
        changes: list[str]) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    text = text.replace("torch.manual_seed(1337)", f"torch.manual_seed({seed})")
    if size is not None:
        text = re.sub(r"self\.linear_size = \d+", f"self.linear_size = {size}", text)
    if epochs is not None:
        text = re.sub(r"for epoch in range\(\d+\)", f"for epoch in range({epochs})", text)
    for change in changes:
        for old, new in CHANGES[change]:
            if old not in text:
                raise SystemExit(f"--change {change}: {path.name} has no {old!r}")
            text = text.replace(old, new)
    axes = _stub_matplotlib()
    began = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(text, str(path), "exec"), {"__name__": "__main__"})
    seconds = time.perf_counter() - began
    weights = np.asarray(axes[0].imshow.call_args[0][0], dtype=np.float64)
    predicted = np.asarray(axes[1].imshow.call_args[0][0], dtype=np.float64)
    rmse = float(np.sqrt(np.mean((weights - predicted) ** 2)))
    return {"file": path.name, "seed": seed, "size": size, "epochs": epochs,
            "changes": changes, "rmse": rmse, "relative_error": rmse / float(weights.std()),
            "weights_min": float(weights.min()), "weights_max": float(weights.max()),
            "weights_std": float(weights.std()), "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="one of the write-up's quine_*.py files")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337])
    parser.add_argument("--size", type=int, default=None, help="default: the file's own")
    parser.add_argument("--epochs", type=int, default=None, help="default: the file's own")
    parser.add_argument("--change", action="append", default=[], choices=sorted(CHANGES))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/quines-writeup.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine_header("torch threads 1"), flush=True)
    done = {(x["file"], x["seed"], x["size"], x["epochs"], tuple(x["changes"]))
            for x in read_results(args.out)}
    for seed in args.seeds:
        if (args.path.name, seed, args.size, args.epochs, tuple(args.change)) in done:
            continue
        line = run(args.path, seed, args.size, args.epochs, args.change)
        append_result(args.out, line)
    for x in read_results(args.out):
        print(f"{x['file']} seed {x['seed']} size {x['size'] or 'its own'} epochs "
              f"{x['epochs'] or 'its own'} {'+'.join(x['changes']) or 'as written'}: RMSE "
              f"{x['rmse']:.3g}, relative {x['relative_error']:.3g}, weights in "
              f"[{x['weights_min']:.3g}, {x['weights_max']:.3g}] ({x['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
