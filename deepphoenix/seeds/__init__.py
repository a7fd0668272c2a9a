"""Built-in seed sources and the CodeT5-small configuration they load.

`paper` is the paper's Table 1 snippet (Sheng, 2022), with two changes: it loads through
``AutoConfig`` because transformers 5's ``PretrainedConfig.from_pretrained`` returns a
generic config that lacks T5's attributes, and it sets ``num_heads`` and ``d_kv`` so the
paper's heads refinement has a literal to change. `tiny` is the same shape with a
128-wide model for CPU runs. Both read ``Salesforce/codet5-small`` as a local directory
that the sandbox writes from `codet5_config()`; nothing is fetched. `tiny-train` is `tiny`
with its own learning dynamics and ``train()`` (the paper's Algorithm 1 in full). `gpt` is a
small GPT language model in the style of nanoGPT (a config dataclass, a model class, its
own learning dynamics), the program of the code-lm task; it needs only torch. The
`quine-*` seeds are neural quines (after a write-up on Chang & Lipson, 2018): networks that
predict their own weights (queried by coordinates, by one-hot vectors, or as one recurrent
sequence) and an LSTM that prints its own file; each defines ``train(model, ctx)`` and
``replicate(model) -> (predicted, actual)`` for the ``self-replication`` objective.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from deepphoenix.errors import UnknownNameError

__all__ = ["BOS_ID", "CODET5_DIR", "EOS_ID", "PAD_ID", "UNK_ID", "codet5_config", "seed_names",
           "seed_source"]

CODET5_DIR = "Salesforce/codet5-small"

# CodeT5's special token ids: the tokenizer reserves them, every built model's config and
# generation use them (the decoder starts from pad, as in T5).
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3


def seed_names() -> list[str]:
    folder = resources.files("deepphoenix.seeds")
    return sorted(p.name[:-3] for p in folder.iterdir()
                  if p.name.endswith(".py") and not p.name.startswith("_"))


def seed_source(name: str) -> str:
    """The text of a built-in seed; `UnknownNameError` with close matches otherwise."""
    if name not in seed_names():
        raise UnknownNameError("seed", name, seed_names())
    return (resources.files("deepphoenix.seeds") / f"{name}.py").read_text(encoding="utf-8")


def codet5_config(vocab_size: int | None = None) -> dict[str, Any]:
    """CodeT5-small's config as a dict, with `vocab_size` replaced when given."""
    text = (resources.files("deepphoenix.seeds") / "codet5-small.json").read_text("utf-8")
    config = {k: v for k, v in json.loads(text).items() if not k.startswith("_")}
    if vocab_size is not None:
        config["vocab_size"] = vocab_size
    return config
