"""The shared vocabulary: one byte-level BPE for every program a view-reading proposer
(``learned``, ``t5-only``, a model ``proposer pretrain`` writes) reads, trained once,
offline, and shipped with the package (``proposers/vocab/``). Nothing is downloaded.

A tokenizer trained per run on one program's refinement pairs learns that program's lines
as whole tokens and spells another program byte by byte: pretrained on other programs, it
spelled the GPT program in 2,605 tokens. The shared one is trained on a fixed corpus:

* the standard-library files the code-lm task reads (`corpus.TRAIN_FILES` and
  `corpus.HELDOUT_FILES`, about 310 KB of ordinary Python: names, numbers, operators);
* the program views of every built-in grammar: for a grammar a built-in seed binds, the
  seed's view and `_PAIRS` view refinement pairs of it in both formats (inputs and targets,
  as a run makes them); for every built-in grammar, its sites as a view line each (name,
  the grammar's default or ``None``, kind, domain; `grammar_view`).

Numbers are split from text before the BPE (`PreTokenizer.DIGITS`), so a literal always
starts and ends on a token boundary (constrained decoding relies on it) and a value the
corpus never held costs a few digit tokens, never the limit.

`build_vocabulary` makes it; ``deepphoenix proposer vocab`` writes it next to this module
with its record (``record.json``: Python's and tokenizers' versions, each stdlib file's
size and SHA-256, the views' SHA-256, the vocabulary size, the command). The same Python
and tokenizers versions rebuild it byte for byte (a test checks it where they match).
"""

from __future__ import annotations

import hashlib
import json
import platform
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tokenizers
from tokenizers import Tokenizer

from deepphoenix.corpus import HELDOUT_FILES, SEPARATOR, TRAIN_FILES, read_corpus
from deepphoenix.errors import ConfigError
from deepphoenix.grammar import Grammar, grammar_names, load_grammar
from deepphoenix.mutator import Program, TargetFormat, parse_program
from deepphoenix.proposers._dataset import make_dataset
from deepphoenix.proposers._tokenizer import PreTokenizer, load_tokenizer, train_tokenizer
from deepphoenix.proposers._view import VIEW_VERSION, _domain, _kind, view_text
from deepphoenix.seeds import seed_source
from deepphoenix.store_io import write_text_atomic

__all__ = ["SEEDED_GRAMMARS", "VOCAB_SIZE", "Vocabulary", "build_vocabulary",
           "grammar_view", "shared_record", "shared_tokenizer", "shared_tokenizer_path",
           "vocabulary_difference", "vocabulary_dir", "write_vocabulary"]

VOCAB_SIZE = 2048
BUILD_COMMAND = "deepphoenix proposer vocab"
TOKENIZER_FILE = "tokenizer.json"
RECORD_FILE = "record.json"
# The built-in seeds and the built-in grammar each is searched with.
SEEDED_GRAMMARS: tuple[tuple[str, str], ...] = (
    ("paper", "t5"), ("tiny", "t5"), ("tiny-train", "t5-train"), ("gpt", "gpt"),
    ("quine-coords", "quine"), ("quine-onehot", "quine"), ("quine-rnn", "quine"),
    ("quine-source", "quine"), ("quine-coords", "quine-sized"),
)
_PAIRS = 64  # view pairs per seeded grammar and format
_SEED = 0


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """A built vocabulary and the record of what it was built from."""

    tokenizer: Tokenizer
    record: dict[str, Any]

    @property
    def text(self) -> str:
        """The tokenizer's JSON, as shipped."""
        return str(self.tokenizer.to_str(pretty=False))


def vocabulary_dir() -> Path:
    """Where the shipped vocabulary lives (package data)."""
    return Path(__file__).with_name("vocab")


def shared_tokenizer_path() -> Path:
    """The shipped tokenizer file."""
    return vocabulary_dir() / TOKENIZER_FILE


def shared_tokenizer() -> Tokenizer:
    """The shipped tokenizer (`CheckpointError` if the package lacks it)."""
    return load_tokenizer(shared_tokenizer_path())


def shared_record() -> dict[str, Any]:
    """The shipped vocabulary's record (what it was built from)."""
    record: dict[str, Any] = json.loads((vocabulary_dir() / RECORD_FILE).read_text("utf-8"))
    return record


def grammar_view(grammar: Grammar) -> str:
    """The grammar's sites as view lines (derived sites left out): each site's name, the
    grammar's default (``None`` without one), kind and domain as the grammar states it."""
    return "\n".join(f"{spec.name}={'None' if spec.default is None else spec.default} "
                     f"{_kind(spec)}{_domain(spec)}"
                     for spec in grammar.sites if spec.derive is None)


def view_corpus() -> list[str]:
    """The views of the corpus, in a fixed order: per seeded grammar the seed's view and
    its view pairs' texts, then every built-in grammar's `grammar_view`."""
    texts: list[str] = []
    for number, (seed, name) in enumerate(SEEDED_GRAMMARS):
        program = parse_program(seed_source(seed), load_grammar(name), f"{seed}.py")
        texts.append(view_text(program))
        for fmt in TargetFormat:
            texts.extend(_pair_texts(program, fmt, random.Random(f"{_SEED}/{number}/{fmt}")))
    texts.extend(grammar_view(load_grammar(name)) for name in _builtin_grammars())
    return texts


def _pair_texts(program: Program, fmt: TargetFormat, rng: random.Random) -> list[str]:
    try:
        pairs = make_dataset(program, _PAIRS, rng.randrange(2**31), fmt, view=True)
    except ConfigError:  # no numeric site to write in the source format
        return []
    return [text for pair in pairs for text in (pair.input, pair.target)]


def _builtin_grammars() -> list[str]:
    shipped = {p.stem for p in (Path(__file__).parents[1] / "grammar" / "builtin").glob("*.toml")}
    return sorted(name for name in grammar_names() if name in shipped)


def build_vocabulary(vocab_size: int = VOCAB_SIZE) -> Vocabulary:
    """Train the shared vocabulary on the corpus above (deterministic for a Python and a
    tokenizers version) and record what it was built from."""
    stdlib = read_corpus((*TRAIN_FILES, *HELDOUT_FILES))
    views = view_corpus()
    files = stdlib.data.decode("utf-8").split(SEPARATOR.decode("ascii"))
    tokenizer = train_tokenizer([*files, *views], vocab_size, PreTokenizer.DIGITS)
    text = tokenizer.to_str(pretty=False)
    record = {
        "command": BUILD_COMMAND, "vocab_size": tokenizer.get_vocab_size(),
        "pre_tokenizer": PreTokenizer.DIGITS.value, "view_version": VIEW_VERSION,
        "python": platform.python_version(), "tokenizers": tokenizers.__version__,
        "stdlib": stdlib.manifest, "views": len(views),
        "views_sha256": _sha256("\n\x1c\n".join(views)),
        "grammars": _builtin_grammars(), "seeded": [list(p) for p in SEEDED_GRAMMARS],
        "tokenizer_sha256": _sha256(text), "tokenizer_bytes": len(text.encode("utf-8")),
    }
    return Vocabulary(tokenizer, record)


def write_vocabulary(vocabulary: Vocabulary, folder: Path | None = None) -> Path:
    """Write the tokenizer and its record into `folder` (default: the package's); return
    the tokenizer's path."""
    folder = vocabulary_dir() if folder is None else folder
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / TOKENIZER_FILE, vocabulary.text)
    write_text_atomic(folder / RECORD_FILE, json.dumps(vocabulary.record, indent=1) + "\n")
    return folder / TOKENIZER_FILE


def vocabulary_difference(built: Vocabulary, folder: Path | None = None) -> str | None:
    """None when `built` is the vocabulary in `folder` (default: the shipped one), byte for
    byte; else one line saying how they differ, naming the corpus or version that does."""
    folder = vocabulary_dir() if folder is None else folder
    try:
        text = (folder / TOKENIZER_FILE).read_text("utf-8")
        record = json.loads((folder / RECORD_FILE).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        return f"{folder}: no readable vocabulary ({exc})"
    if text == built.text:
        return None
    new = built.record
    changed = [key for key in ("python", "tokenizers", "stdlib", "views_sha256", "vocab_size",
                               "pre_tokenizer", "view_version") if record.get(key) != new.get(key)]
    why = (f"; what differs: {', '.join(changed)}" if changed
           else "; the same corpus and versions gave another BPE")
    return f"{folder / TOKENIZER_FILE} is not what `{BUILD_COMMAND}` builds here{why}"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
