"""The offline corpus of the GPT task: CPython standard-library source, read as bytes.

Every machine with Python has the same files under ``sysconfig.get_paths()["stdlib"]``, so
the corpus needs no download. The file lists are fixed; the manifest records each file's
size and SHA-256, because the texts differ a little between Python versions and scores
are comparable only over the same bytes. Held-out blocks come from other files than the
training blocks, so held-out text is never trained on.

No torch here: blocks are plain lists of byte values (0-255), ready to be stored as JSON
in a run directory and turned into tensors where the model runs.
"""

from __future__ import annotations

import hashlib
import json
import random
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepphoenix.errors import ConfigError

__all__ = [
    "HELDOUT_FILES",
    "SEPARATOR",
    "TRAIN_FILES",
    "CorpusFile",
    "CorpusText",
    "LMDataset",
    "build_lm_dataset",
    "make_blocks",
    "read_corpus",
    "stdlib_root",
]

# Pure-Python modules present in CPython 3.11, 3.12 and 3.13 alike (none of the modules
# PEP 594 removed): ordinary library code of 2-48 KB each, about 240 KB in all.
TRAIN_FILES: tuple[str, ...] = (
    "bisect.py",
    "colorsys.py",
    "contextlib.py",
    "copy.py",
    "fnmatch.py",
    "fractions.py",
    "functools.py",
    "glob.py",
    "graphlib.py",
    "heapq.py",
    "numbers.py",
    "operator.py",
    "queue.py",
    "sched.py",
    "shlex.py",
    "string.py",
    "textwrap.py",
)

# Disjoint from TRAIN_FILES; about 70 KB.
HELDOUT_FILES: tuple[str, ...] = (
    "calendar.py",
    "cmd.py",
    "pprint.py",
    "reprlib.py",
)

# Between files: newline, ASCII "file separator" (0x1C, never in source text), newline.
SEPARATOR = b"\n\x1c\n"

_FORMAT = 1


def stdlib_root() -> Path:
    """The directory of this interpreter's pure-Python standard library."""
    return Path(sysconfig.get_paths()["stdlib"])


@dataclass(frozen=True, slots=True)
class CorpusFile:
    """One file of a corpus: its name, size in bytes and SHA-256 (hex)."""

    name: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CorpusFile:
        return cls(name=str(data["name"]), size=int(data["size"]), sha256=str(data["sha256"]))


@dataclass(frozen=True, slots=True)
class CorpusText:
    """The files' bytes joined with `SEPARATOR`, and a manifest entry per file."""

    data: bytes
    files: tuple[CorpusFile, ...]
    root: str

    @property
    def manifest(self) -> list[dict[str, Any]]:
        """Per file, in reading order: name, size and sha256."""
        return [f.to_dict() for f in self.files]


def read_corpus(names: Sequence[str], root: Path | None = None) -> CorpusText:
    """Read `names` from `root` (default: the standard library) and join them.

    Raises `ConfigError` naming the file and the directory searched when a file is
    missing or cannot be read.
    """
    if isinstance(names, str) or not names:
        raise ConfigError(f"Expected a non-empty sequence of file names but got names={names!r}")
    folder = Path(root) if root is not None else stdlib_root()
    parts: list[bytes] = []
    files: list[CorpusFile] = []
    for name in names:
        path = folder / name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(
                f"corpus file {name!r} not found in {str(folder)!r}; pass root= a directory "
                "holding the corpus files"
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"corpus file {name!r} in {str(folder)!r} cannot be read: "
                f"{exc.strerror or exc}"
            ) from None
        parts.append(data)
        files.append(CorpusFile(name, len(data), hashlib.sha256(data).hexdigest()))
    return CorpusText(SEPARATOR.join(parts), tuple(files), str(folder))


def _check_int(name: str, value: object, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(
            f"Expected int >= {low} but got {name}={value!r} (type={type(value).__name__})"
        )


def make_blocks(data: bytes, block_size: int, count: int, seed: int) -> list[list[int]]:
    """`count` blocks of `block_size + 1` byte values at offsets drawn from
    ``random.Random(seed)``: inputs are a block's first `block_size` values, targets its
    last. Same data and seed, same blocks. `ConfigError` if `data` is shorter than one block.
    """
    _check_int("block_size", block_size, 1)
    _check_int("count", count, 0)
    _check_int("seed", seed, 0)
    width = block_size + 1
    if len(data) < width:
        raise ConfigError(
            f"corpus of {len(data)} bytes is shorter than one block of block_size + 1 = "
            f"{width} bytes; use a smaller block_size or more text"
        )
    rng = random.Random(seed)
    starts = [rng.randrange(len(data) - width + 1) for _ in range(count)]
    return [list(data[s : s + width]) for s in starts]


@dataclass(frozen=True, slots=True)
class LMDataset:
    """Training and held-out blocks for byte-level language modelling, and where they came
    from: `manifest` holds the files (with sha256), block_size, seed and block counts."""

    train: list[list[int]]
    heldout: list[list[int]]
    manifest: dict[str, Any]

    def to_json(self) -> str:
        """A compact JSON document for a run directory; `from_json` reads it back."""
        return json.dumps(
            {"manifest": self.manifest, "train": self.train, "heldout": self.heldout},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> LMDataset:
        """Read `to_json`'s output; `ConfigError` if it is not such a document."""
        try:
            data = json.loads(text)
            manifest, train, heldout = data["manifest"], data["train"], data["heldout"]
        except (json.JSONDecodeError, TypeError, KeyError) as exc:
            raise ConfigError(f"not an LM dataset document: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
            raise ConfigError(
                f"LM dataset document has format {_format_of(manifest)!r}, expected {_FORMAT}"
            )
        block_size = manifest.get("block_size")
        if not isinstance(block_size, int) or isinstance(block_size, bool) or block_size < 1:
            raise ConfigError(
                f"LM dataset document: manifest block_size must be an int >= 1, "
                f"got {block_size!r}"
            )
        width = block_size + 1
        for part, blocks in (("train", train), ("heldout", heldout)):
            if not isinstance(blocks, list) or not all(_is_block(b, width) for b in blocks):
                raise ConfigError(
                    f"LM dataset document: {part!r} must be a list of blocks of {width} "
                    "byte values"
                )
        return cls(train=train, heldout=heldout, manifest=manifest)


def _format_of(manifest: object) -> object:
    return manifest.get("format") if isinstance(manifest, dict) else None


def _is_block(block: object, width: int) -> bool:
    return (
        isinstance(block, list)
        and len(block) == width
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 256 for v in block)
    )


def build_lm_dataset(
    block_size: int, train_blocks: int, heldout_blocks: int, seed: int,
    root: Path | None = None,
) -> LMDataset:
    """Blocks of `TRAIN_FILES` for training and of `HELDOUT_FILES` for evaluation, each
    drawn with `make_blocks(…, seed)`. Same arguments and files, same dataset."""
    train_text = read_corpus(TRAIN_FILES, root)
    heldout_text = read_corpus(HELDOUT_FILES, root)
    manifest: dict[str, Any] = {
        "format": _FORMAT,
        "block_size": block_size,
        "seed": seed,
        "train_blocks": train_blocks,
        "heldout_blocks": heldout_blocks,
        "separator": SEPARATOR.hex(),
        "train_files": train_text.manifest,
        "heldout_files": heldout_text.manifest,
    }
    return LMDataset(
        train=make_blocks(train_text.data, block_size, train_blocks, seed),
        heldout=make_blocks(heldout_text.data, block_size, heldout_blocks, seed),
        manifest=manifest,
    )
