"""A run's data, made once and kept in ``RUN_DIR/data/``: the refinement pairs, their
tokenizer and tokens (what the paper's ``t5`` proposer trains on, and the paper's few-shot
data), the program-view pairs of a view-reading proposer (``learned``, ``t5-only``) in
``data/view/`` (a candidate of several files has only these), and for the code-lm task
the byte blocks of the corpus.

Paths are stored relative to ``data/``, so a run directory can move.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import cast

from deepphoenix.corpus import build_lm_dataset
from deepphoenix.engine._config import RunConfig
from deepphoenix.engine._rundir import INIT_DIR, derive_seed
from deepphoenix.errors import ConfigError, RunDirError
from deepphoenix.mutator import Bundle, Program
from deepphoenix.objectives import uses_task
from deepphoenix.proposers import (
    MAX_TOKENS,
    VIEW_VERSION,
    ProposerData,
    longest_pair,
    make_dataset,
    prepare_data,
    shared_tokenizer_path,
    too_long_message,
    write_pairs,
)
from deepphoenix.store_io import write_text_atomic

__all__ = ["VIEW_DIR", "RunData", "needs_pairs", "prepare_run_data"]

_LM_FILE = "blocks.json"
_META = "data.json"
VIEW_DIR = "view"  # in data/: the view-reading proposer's pairs, tokenizer and tokens
_CHECK_PAIRS = 32  # pairs tokenized before the dataset is made, to fail fast


@dataclass(frozen=True, slots=True)
class RunData:
    """What the proposer and the evaluator read."""

    proposer: ProposerData | None  # refinement pairs, tokenizer, tokens; None if unused
    rows: Path | None  # the rows of the built-in objectives (None: a user objective)
    vocab_size: int  # the refinement tokenizer's (T5 programs are resized to it)
    rows_count: int = 0
    proposer_init: Path | None = None  # the run's copy of a pretrained proposer (--proposer-init)


def prepare_run_data(folder: Path, config: RunConfig, seed_program: Program | Bundle | None,
                     refinement: bool, view: bool = False) -> RunData:
    """Make (or read back) the data a run needs. `refinement`: whether anything needs the
    refinement pairs (a learned proposer, or the refinement task); only those are made
    from `seed_program`'s sites (it may be None where they are not needed). `view`: the
    proposer reads the program view, so its pairs are views, kept apart in ``data/view/``
    (the refinement task, if any, keeps its pairs of whole sources in ``data/``).

    Before any pair is made, the first few pairs are tokenized: a program too long for
    the proposer (or the task) fails here, in seconds, with one line saying what to do."""
    init = folder / INIT_DIR if config.proposer_init is not None else None
    if init is not None and not (init / "proposer.json").exists():
        raise RunDirError(f"{init}: the run's copy of its --proposer-init model is missing "
                          "(the run was stopped while it was copied); start a new run")
    if view and (folder / _META).exists() and not (folder / VIEW_DIR / _META).exists():
        # Written before program views (a run makes its view pairs first): its proposer
        # read whole sources, and a resume must propose as it would have.
        view = False
    task = needs_pairs(config)  # the refinement task scores on whole-source pairs
    proposer = None
    if (refinement or task) and seed_program is None:
        raise ValueError("the refinement pairs are made from a seed program's sites")
    if refinement and view:
        assert seed_program is not None
        proposer = _refinement(folder / VIEW_DIR, config, seed_program, init, "view")
    source = None
    if task or (refinement and not view):
        assert seed_program is not None
        reader = "task" if not refinement or view else config.proposer
        source = _refinement(folder, config, seed_program, None if view else init, reader)
        if proposer is None and refinement:
            proposer = source
    rows: Path | None = None
    count = 0
    if _builtin(config):
        if config.task == "refinement":
            assert source is not None
            rows, count = source.tokens_path, source.pairs
        else:
            rows, count = _lm_blocks(folder, config)
    vocab = source.vocab_size if source is not None else config.vocab_size
    return RunData(proposer, rows, vocab, count, init)


def needs_pairs(config: RunConfig, refinement: bool = False) -> bool:
    """Whether a run with `config` makes refinement pairs (from its seed's grammar sites):
    for a learned proposer (`refinement`), or to score on the refinement task."""
    return refinement or (config.task == "refinement" and _builtin(config))


def _builtin(config: RunConfig) -> bool:
    return uses_task(config.objective)


def _refinement(folder: Path, config: RunConfig, seed_program: Program | Bundle,
                init: Path | None, reader: str) -> ProposerData:
    """The refinement pairs in `folder` (made once, then read back), for `reader`: "view"
    (a view-reading proposer), "task" (the refinement task's rows) or a proposer's name
    (one that reads whole sources)."""
    meta = folder / _META
    if isinstance(seed_program, Bundle) and reader != "view":  # RunConfig refuses it first
        raise ConfigError("whole-source refinement pairs are one file's rewrites; a "
                          "candidate of several files has only views (propose with learned, "
                          "tpe, gp or random)")
    if meta.exists():
        # The files live next to data.json whatever the paths stored (older runs stored
        # them relative to the working directory of the first start).
        stored = json.loads(meta.read_text())
        data = ProposerData.from_dict({
            **stored, "tokenizer_path": folder / Path(stored["tokenizer_path"]).name,
            "tokens_path": folder / Path(stored["tokens_path"]).name})
        if data.view not in (None, VIEW_VERSION):
            raise RunDirError(f"{folder}: the run's proposer reads program view version "
                              f"{data.view}; this deepphoenix writes version {VIEW_VERSION}")
        return data
    view = VIEW_VERSION if reader == "view" else None
    # A `Bundle` answers what the view asks of a `Program` (its sites in every file).
    program = cast(Program, seed_program)
    seed = derive_seed(config.seed, "data")
    tokenizer = _tokenizer(config, init, view is not None)
    sample = make_dataset(program, _CHECK_PAIRS, seed, config.format, view is not None)
    longest = longest_pair(sample, config.vocab_size, config.pre_tokenizer, tokenizer)
    # A BPE trained on a few pairs learns fewer merges than one trained on all of them
    # (tiny seed: 21 tokens against 19): only a clear excess fails before the dataset; the
    # dataset's own tokenizer decides the rest (`prepare_data`).
    if longest > MAX_TOKENS * 5 // 4 or (tokenizer is not None and longest > MAX_TOKENS):
        raise ConfigError(_too_long(reader, longest, tokenizer=init))
    pairs = make_dataset(program, config.dataset_size, seed, config.format,
                         view is not None)
    folder.mkdir(parents=True, exist_ok=True)
    write_pairs(pairs, folder / "pairs.jsonl", config.format)
    # The tokenizer is copied into `folder` (a resume and `lineage` read it from there).
    data = prepare_data(pairs, config.format, folder, config.vocab_size, config.pre_tokenizer,
                        tokenizer, view, too_long=partial(_too_long, reader, tokenizer=init))
    stored = {**data.to_dict(), "tokenizer_path": data.tokenizer_path.name,
              "tokens_path": data.tokens_path.name}  # relative to data/
    write_text_atomic(meta, json.dumps(stored, indent=2))
    return data


def _tokenizer(config: RunConfig, init: Path | None, view: bool) -> Path | None:
    """The tokenizer file the pairs are read with; None: one trained on them. A pretrained
    proposer reads with its own (its embeddings index it); a view-reading proposer with
    the shared vocabulary (`proposers._vocab`) unless the run asks for its own
    (``vocabulary = "run"``). Whole-source pairs (the paper's ``t5``, the refinement task)
    train their own: a BPE of the program's own pairs spells its whole source in a few
    tokens a line, and the refinement task's models are sized to it."""
    if init is not None:
        return init / "tokenizer.json"
    if view and config.vocabulary == "shared":
        return shared_tokenizer_path()
    return None


def _too_long(reader: str, tokens: int, tokenizer: Path | None = None) -> str:
    """One line: who cannot read pairs of `tokens` tokens, and the way on."""
    if reader == "view" or tokenizer is not None:
        return too_long_message(tokens, VIEW_VERSION if reader == "view" else None, tokenizer)
    if reader == "task":
        return (f"the refinement task trains each candidate on refinement pairs of the whole "
                f"source, and this program's are about {tokens} tokens long, over the "
                f"{MAX_TOKENS} limit; score it with another --objective")
    return (f"proposer {reader!r} reads the whole source, and a refinement pair of this "
            f"program is about {tokens} tokens long, over the {MAX_TOKENS} limit; "
            "--proposer learned reads a compact view of the program's sites instead")


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
