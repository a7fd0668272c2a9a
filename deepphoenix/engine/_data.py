"""A run's data, made once and kept in ``RUN_DIR/data/``: the refinement pairs, their
tokenizer and tokens (what the learned proposer trains on, and the paper's few-shot
data), and for the code-lm task the byte blocks of the corpus.

Paths are stored relative to ``data/``, so a run directory can move.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from deepphoenix.corpus import build_lm_dataset
from deepphoenix.engine._config import RunConfig
from deepphoenix.engine._rundir import INIT_DIR, derive_seed
from deepphoenix.errors import ConfigError, RunDirError
from deepphoenix.mutator import Bundle, Program
from deepphoenix.objectives import uses_task
from deepphoenix.proposers import ProposerData, make_dataset, prepare_data, write_pairs
from deepphoenix.store_io import write_text_atomic

__all__ = ["RunData", "needs_pairs", "prepare_run_data"]

_LM_FILE = "blocks.json"


@dataclass(frozen=True, slots=True)
class RunData:
    """What the proposer and the evaluator read."""

    proposer: ProposerData | None  # refinement pairs, tokenizer, tokens; None if unused
    rows: Path | None  # the rows of the built-in objectives (None: a user objective)
    vocab_size: int  # the refinement tokenizer's (T5 programs are resized to it)
    rows_count: int = 0
    proposer_init: Path | None = None  # the run's copy of a pretrained proposer (--proposer-init)


def prepare_run_data(folder: Path, config: RunConfig, seed_program: Program | Bundle | None,
                     refinement: bool) -> RunData:
    """Make (or read back) the data a run needs. `refinement`: whether anything needs the
    refinement pairs (a learned proposer, or the refinement task); only those are made
    from `seed_program`'s sites (it may be None where they are not needed)."""
    proposer = None
    init = folder / INIT_DIR if config.proposer_init is not None else None
    if init is not None and not (init / "proposer.json").exists():
        raise RunDirError(f"{init}: the run's copy of its --proposer-init model is missing "
                          "(the run was stopped while it was copied); start a new run")
    if needs_pairs(config, refinement):
        if seed_program is None:
            raise ValueError("the refinement pairs are made from a seed program's sites")
        proposer = _refinement(folder, config, seed_program, init)
    rows: Path | None = None
    count = 0
    if _builtin(config):
        if config.task == "refinement":
            assert proposer is not None
            rows, count = proposer.tokens_path, proposer.pairs
        else:
            rows, count = _lm_blocks(folder, config)
    vocab = proposer.vocab_size if proposer is not None else config.vocab_size
    return RunData(proposer, rows, vocab, count, init)


def needs_pairs(config: RunConfig, refinement: bool = False) -> bool:
    """Whether a run with `config` makes refinement pairs (from its seed's grammar sites):
    for a learned proposer (`refinement`), or to score on the refinement task."""
    return refinement or (config.task == "refinement" and _builtin(config))


def _builtin(config: RunConfig) -> bool:
    return uses_task(config.objective)


def _refinement(folder: Path, config: RunConfig, seed_program: Program | Bundle,
                init: Path | None) -> ProposerData:
    if isinstance(seed_program, Bundle):  # RunConfig refuses it first; said again here
        raise ConfigError("the refinement pairs are one file's rewrites; a candidate of "
                          "several files has none (propose with tpe, gp or random)")
    meta = folder / "data.json"
    if meta.exists():
        # The files live next to data.json whatever the paths stored (older runs stored
        # them relative to the working directory of the first start).
        stored = json.loads(meta.read_text())
        return ProposerData.from_dict({
            **stored, "tokenizer_path": folder / Path(stored["tokenizer_path"]).name,
            "tokens_path": folder / Path(stored["tokens_path"]).name})
    pairs = make_dataset(seed_program, config.dataset_size, derive_seed(config.seed, "data"),
                         config.format)
    write_pairs(pairs, folder / "pairs.jsonl", config.format)
    # A pretrained proposer reads with its own tokenizer (its embeddings index it).
    tokenizer = init / "tokenizer.json" if init is not None else None
    data = prepare_data(pairs, config.format, folder, config.vocab_size, config.pre_tokenizer,
                        tokenizer)
    stored = {**data.to_dict(), "tokenizer_path": data.tokenizer_path.name,
              "tokens_path": data.tokens_path.name}  # relative to data/
    write_text_atomic(meta, json.dumps(stored, indent=2))
    return data


def _lm_blocks(folder: Path, config: RunConfig) -> tuple[Path, int]:
    """The code-lm rows: the few-shot blocks, then the held-out blocks (from files never
    trained on), in one file; the manifest names every corpus file with its SHA-256."""
    path = folder / _LM_FILE
    if path.exists():
        return path, int(json.loads((folder / "corpus.json").read_text())["rows"])
    dataset = build_lm_dataset(config.block_size, config.fewshot_samples,
                               config.heldout_samples, derive_seed(config.seed, "corpus"))
    blocks = [*dataset.train, *dataset.heldout]
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "corpus.json", json.dumps(
        {**dataset.manifest, "rows": len(blocks)}, indent=2))
    write_text_atomic(path, json.dumps({"blocks": blocks}, separators=(",", ":")))
    return path, len(blocks)
