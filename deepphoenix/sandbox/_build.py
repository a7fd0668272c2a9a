"""Build the model a source defines. Runs inside a worker (imports torch when called).

The source is executed with ``transformers`` and ``torch`` already in its namespace (the
paper's snippet uses ``transformers`` without importing it), in the worker's workspace,
where ``Salesforce/codet5-small/config.json`` is written from the shipped CodeT5-small
config with the run's vocabulary size, so ``from_pretrained("Salesforce/codet5-small")``
reads a local directory and nothing is fetched. Only trusted sources reach this: the seed,
or a trusted parent with literal edits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deepphoenix.seeds import CODET5_DIR, codet5_config

__all__ = ["BOS_ID", "EOS_ID", "PAD_ID", "UNK_ID", "BuildFailure", "build_model",
           "write_codet5_config"]

# CodeT5's special token ids: the tokenizer reserves them, the built model's config and
# generation use them (the decoder starts from pad, as in T5).
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3


class BuildFailure(Exception):
    """The source ran but did not define a usable model."""


def write_codet5_config(workspace: Path, vocab_size: int) -> Path:
    folder = workspace / CODET5_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps(codet5_config(vocab_size), indent=1))
    return path


def build_model(source: str, workspace: Path, vocab_size: int, seed: int) -> Any:
    """Execute `source` and return its ``model``, freshly initialised with `seed`, its
    vocabulary sized to the tokenizer and its special-token ids set to ours."""
    import torch
    import transformers

    write_codet5_config(workspace, vocab_size)
    torch.manual_seed(seed)
    namespace: dict[str, Any] = {
        "__name__": "__deepphoenix_candidate__",
        "transformers": transformers,
        "torch": torch,
    }
    exec(compile(source, "<candidate>", "exec"), namespace)  # trusted: see module docstring
    model: Any = namespace.get("model")
    if model is None:
        raise BuildFailure("the source defines no `model`")
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "generate"):
        raise BuildFailure(
            f"`model` is a {type(model).__name__}, not a transformers model with generate()"
        )
    built: Any = model  # a transformers model; torch's Module typing does not know it
    config = built.config
    if not getattr(config, "is_encoder_decoder", False):
        raise BuildFailure("`model` is not an encoder-decoder (seq2seq) model")
    if getattr(config, "vocab_size", vocab_size) != vocab_size:
        built.resize_token_embeddings(vocab_size)
    config.pad_token_id, config.bos_token_id, config.eos_token_id = PAD_ID, BOS_ID, EOS_ID
    config.decoder_start_token_id = PAD_ID
    return built


def count_parameters(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))
