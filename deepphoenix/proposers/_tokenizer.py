"""The proposer's tokenizer: a byte-level BPE trained offline with `tokenizers` on the
refinement corpus, saved with the run and reloaded from there. Nothing is downloaded.

Special tokens follow CodeT5: ``<pad>`` 0, ``<s>`` 1, ``</s>`` 2, plus ``<unk>`` 3; every
encoding ends with ``</s>``.

Pre-tokenizers (chosen by measurement, see benchmarks/RESULTS.md):

- ``digits`` (default): runs of digits are split from everything else, then byte-level BPE
  without GPT-2's regex split. Whole lines such as ``\\nconfig.d_ff = `` become single
  tokens, numbers become a few digit tokens, and every numeric literal starts and ends on a
  token boundary, which constrained decoding relies on.
- ``none``: byte-level BPE over the whole text (fewest tokens; literals merge with text).
- ``gpt2``: GPT-2's regex split (what CodeT5's RoBERTa-style tokenizer does).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from deepphoenix.errors import CheckpointError, ConfigError
from deepphoenix.seeds import BOS_ID, EOS_ID, PAD_ID

__all__ = [
    "BOS_ID",
    "EOS_ID",
    "PAD_ID",
    "SPECIAL_TOKENS",
    "PreTokenizer",
    "load_tokenizer",
    "train_tokenizer",
]

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")  # in id order: PAD_ID, BOS_ID, EOS_ID, UNK_ID
_MIN_VOCAB = 256 + len(SPECIAL_TOKENS) + 1


class PreTokenizer(StrEnum):
    DIGITS = "digits"
    NONE = "none"
    GPT2 = "gpt2"


def _pre_tokenizer(kind: PreTokenizer) -> pre_tokenizers.PreTokenizer:
    if kind is PreTokenizer.GPT2:
        return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    if kind is PreTokenizer.NONE:
        return byte_level
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"[0-9]+"), behavior="isolated"), byte_level,
    ])


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024,
                    pre_tokenizer: PreTokenizer | str = PreTokenizer.DIGITS) -> Tokenizer:
    """Train a deterministic byte-level BPE of `vocab_size` tokens on `texts`."""
    if not isinstance(vocab_size, int) or vocab_size < _MIN_VOCAB:
        raise ConfigError(
            f"Expected int >= {_MIN_VOCAB} (256 bytes + special tokens) but got "
            f"vocab_size={vocab_size!r}"
        )
    kind = PreTokenizer(pre_tokenizer)
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = _pre_tokenizer(kind)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=2,
    )
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", EOS_ID)]
    )
    for token, expected in zip(SPECIAL_TOKENS, range(len(SPECIAL_TOKENS)), strict=True):
        assert tokenizer.token_to_id(token) == expected, token
    return tokenizer


def load_tokenizer(path: Path) -> Tokenizer:
    """Load ``tokenizer.json`` from a file or a model directory."""
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.exists():
        raise CheckpointError(f"{path}: no tokenizer here; train one with `deepphoenix train`")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises plain Exception subclasses
        raise CheckpointError(f"{path}: not a tokenizer ({exc})") from None
