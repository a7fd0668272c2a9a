"""A small nanoGPT-style project, written by the tests (issue 32): a model file with a
`GPTConfig`, a config override, and a training script run as `python train.py CONFIG
--key=value` that prints `step N: train loss X, val loss Y` as nanoGPT's does. Its
"training" is arithmetic on the config (no torch), so a search over it takes seconds; the
walk-through test in `test_project_run.py` trains a real GPT instead (slow)."""

from __future__ import annotations

from pathlib import Path

MODEL = '''\
"""A GPT's shape in nanoGPT's style (no torch here: the training script is arithmetic)."""

from dataclasses import dataclass


@dataclass
class GPTConfig:
    block_size: int = 64
    vocab_size: int = 65
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True


def parameters(config):
    return 12 * config.n_layer * config.n_embd ** 2 + config.vocab_size * config.n_embd
'''

CONFIG = '''\
# a small run, in the style of nanoGPT's config/train_shakespeare_char.py
out_dir = "out-small"
eval_interval = 2
n_layer = 2
n_head = 4
n_embd = 128
dropout = 0.1
learning_rate = 1e-3
'''

TRAIN = '''\
"""Train a GPT, nanoGPT-style: defaults here, then a config file and --key=value overrides
(nanoGPT's configurator, shortened). The loss is arithmetic on the settings."""

import json
import math
import os
import sys
import time
from ast import literal_eval

from model import GPTConfig, parameters

out_dir = "out"
eval_interval = 1
max_iters = 10
n_layer = 12
n_head = 12
n_embd = 768
dropout = 0.0
learning_rate = 6e-4
sleep = 0.0
for arg in sys.argv[1:]:
    if "=" not in arg:
        exec(open(arg).read())
    else:
        key, value = arg[2:].split("=")
        globals()[key] = literal_eval(value)

config = GPTConfig(n_layer=n_layer, n_head=n_head, n_embd=n_embd, dropout=dropout)
print(f"parameters {parameters(config)}; workspace: git {os.path.exists('.git')}, data "
      f"linked {os.path.islink('data/train.bin')}, threads {os.environ.get('OMP_NUM_THREADS')}")
print(f"data at {os.path.realpath('data/train.bin')}: "
      f"{len(open('data/train.bin', 'rb').read())} bytes read")
base = (abs(math.log10(learning_rate) + 2.7) + abs(n_layer - 3) / 4
        + abs(math.log2(n_embd / 192)) / 2 + dropout + (0.05 if config.bias else 0.0)
        + 6.4 / config.block_size)
for it in range(0, max_iters + 1, eval_interval):
    val = base + 2.0 / (1 + it)
    print(f"step {it}: train loss {0.9 * val:.4f}, val loss {val:.4f}", flush=True)
    time.sleep(sleep)
os.makedirs(out_dir, exist_ok=True)
with open(os.path.join(out_dir, "ckpt.json"), "w") as f:
    json.dump({"val": val}, f)
'''

METRIC = r"step (?P<step>\d+): .*val loss (?P<value>[0-9.]+)"
COMMAND = "cmd:python train.py config/train_small.py --max_iters=6"


def write_project(folder: Path) -> Path:
    """The project in `folder` (made), with a .git folder and a 2 MiB data file."""
    (folder / "config").mkdir(parents=True)
    (folder / "data").mkdir()
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/master\n")
    (folder / "model.py").write_text(MODEL)
    (folder / "config" / "train_small.py").write_text(CONFIG)
    (folder / "train.py").write_text(TRAIN)
    (folder / "data" / "train.bin").write_bytes(bytes(2 << 20))
    return folder


def run_args(project: Path, *extra: str) -> list[str]:
    """`deepphoenix run` over the project: model.py and the config, nanoGPT's grammar, the
    training command as the objective."""
    return ["run", "--source", str(project / "model.py"),
            "--with", str(project / "config" / "train_small.py"), "--grammar", "nanogpt",
            "--objective", COMMAND, "--metric", METRIC, "--proposer", "random",
            "--episodes", "1", "--batches", "2", "--candidates", "2", "--seed", "1",
            "--workers", "1", "--threads", "1", "--link-over", "1", "--timeout", "60", *extra]
