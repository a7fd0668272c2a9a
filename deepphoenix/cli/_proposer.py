"""`deepphoenix proposer`: proposers across runs (pretrain one on earlier runs)."""

from __future__ import annotations

import json
import os
import platform
import sys
from functools import partial
from pathlib import Path

import click

from deepphoenix.cli._common import (
    DEVICES,
    echo_json,
    fail,
    json_option,
    require_device,
    staged_model,
)
from deepphoenix.cli._progress import ProgressBar, Reporter
from deepphoenix.engine import (
    PER_PROGRAM,
    BuiltinPairs,
    builtin_init_dir,
    builtin_pairs,
    load_seed_text,
    pretraining_pairs,
)
from deepphoenix.errors import ConfigError, RunDirError
from deepphoenix.mutator import TargetFormat
from deepphoenix.proposers import (
    VIEW_VERSION,
    T5Sampler,
    TrainSettings,
    build_vocabulary,
    prepare_data,
    shared_record,
    shared_tokenizer_path,
    too_long_message,
    write_vocabulary,
)
from deepphoenix.proposers._tokenizer import PreTokenizer
from deepphoenix.proposers._vocab import vocabulary_difference, vocabulary_dir
from deepphoenix.sandbox import Worker, WorkerSettings
from deepphoenix.store_io import write_text_atomic

__all__ = ["proposer"]


@click.group()
def proposer() -> None:
    """Proposers across runs: pretrain one on earlier runs' lineages."""


@proposer.command()
@click.argument("run_dirs", nargs=-1, type=click.Path(file_okay=False, path_type=Path))
@click.option("--builtin", is_flag=True,
              help="Also (or only) pretrain on the refinement pairs of every built-in "
                   "program under its grammar (what the shipped proposer learned).")
@click.option("--per-program", type=click.IntRange(min=1), default=PER_PROGRAM,
              show_default=True, help="Refinement pairs of each built-in program (--builtin).")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Model directory to write (must not exist, or be empty); with --builtin "
                   "alone, default: the cache `run --proposer-init builtin` reads.")
@click.option("--source", type=str, default="tiny", show_default=True,
              help="The seed or file that defines the proposing T5 (as --proposer-source).")
@click.option("--format", "fmt", type=click.Choice([f.value for f in TargetFormat]),
              default="source", show_default=True,
              help="What the model writes; a run started from it needs the same --format.")
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True,
              help="Passes over the pairs.")
@click.option("--vocabulary", type=click.Choice(["shared", "run"]), default="shared",
              show_default=True,
              help="The model's tokenizer: shared (the one shipped, which every learned "
                   "run reads with) or run (a BPE trained on these pairs).")
@click.option("--vocab-size", type=click.IntRange(min=261, max=262_144), default=1024,
              show_default=True, help="Size of the BPE trained on the pairs (--vocabulary "
                                      "run).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Pairs per optimizer step.")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="AdamW learning rate.")
@click.option("--seed", "seed_", type=int, default=0, show_default=True,
              help="Seed of the replayed pairs, the model's initialisation and data order.")
@click.option("--device", type=DEVICES, default="auto", show_default=True,
              help="Where the model trains: auto uses CUDA when present.")
@json_option
def pretrain(run_dirs: tuple[Path, ...], builtin: bool, per_program: int, out: Path | None,
             source: str, fmt: str, epochs: int, vocabulary: str, vocab_size: int,
             batch_size: int, lr: float, seed_: int, device: str, as_json: bool) -> None:
    """Train a proposer on the improving pairs of earlier runs (RUN_DIRS) and, with
    --builtin, on every built-in program's refinements; save it to OUT.

    Each run gives its hindsight pairs (a worse variant and a better one, repeated by the
    gain), whatever its program or task, and as many refinement pairs of its seed, all
    in the program view (each site's name, value and domain) that `learned` reads. Start
    a run from the result with `deepphoenix run --proposer-init OUT`.
    """
    if not run_dirs and not builtin:
        raise ConfigError("name earlier runs (RUN_DIRS) to pretrain on, or --builtin")
    if out is None:
        if run_dirs or not builtin:
            raise ConfigError("name the model directory to write with --out")
        out = builtin_init_dir(fmt)
    if out.exists() and any(out.iterdir()):
        raise RunDirError(f"{out}: exists and is not empty; choose another --out")
    require_device(device)
    text = load_seed_text(source)
    pairs, runs = pretraining_pairs(run_dirs, fmt, seed_) if run_dirs else ([], [])
    programs: list[BuiltinPairs] = []
    if builtin:
        made, programs = builtin_pairs(fmt, seed_, per_program)
        pairs = [*made, *pairs]
    settings = TrainSettings(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed_)
    settings.validate()
    reporter = Reporter("json" if as_json else "auto")
    with staged_model(out) as staging:
        data = prepare_data(pairs, fmt, staging / "data", vocab_size, PreTokenizer.DIGITS,
                            shared_tokenizer_path() if vocabulary == "shared" else None,
                            view=VIEW_VERSION,
                            too_long=partial(too_long_message, view=VIEW_VERSION))
        bar = ProgressBar(reporter, "pretrain")
        with Worker(WorkerSettings(threads=os.cpu_count() or 1, device=device)) as worker:
            _, report = T5Sampler.train(
                text, data, settings, worker, out=staging / "model",
                on_progress=lambda m: bar.update(m["step"], m["total"], loss=m["loss"]))
        reporter.done()
        write_text_atomic(staging / "model" / "pretrain.json", json.dumps(
            {"runs": [r.to_dict() for r in runs], "builtin": [p.to_dict() for p in programs],
             "pairs": len(pairs), "source": source, "format": fmt, "epochs": epochs,
             "vocabulary": vocabulary, "vocab_size": data.vocab_size,
             "batch_size": batch_size, "lr": lr, "seed": seed_,
             "command": ["deepphoenix", *sys.argv[1:]], "versions": _versions()},
            indent=2))
    summary = {
        "model": str(out), "runs": len(runs), "builtin": len(programs), "pairs": len(pairs),
        "hindsight": sum(r.hindsight for r in runs), "params": report.params,
        "steps": report.steps, "final_loss": report.final_loss,
        "seconds": report.seconds, "format": fmt, "vocab_size": data.vocab_size,
    }
    if as_json:
        echo_json(summary)
        return
    click.echo(f"pretrained {report.params / 1e6:.2f} M parameters on {len(pairs)} pairs "
               f"({summary['hindsight']} hindsight) from {len(runs)} runs and "
               f"{len(programs)} built-in programs, "
               f"{report.steps} steps in {report.seconds:.1f} s: final loss "
               f"{report.final_loss:.4f}")
    click.echo(f"saved to {out}/ (start a run from it: deepphoenix run --proposer-init {out})")


@proposer.command()
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write tokenizer.json and record.json to (default: the "
                   "package's own, deepphoenix/proposers/vocab/, for a developer).")
@click.option("--check", is_flag=True,
              help="Write nothing: build it and compare with the shipped vocabulary (exit 1 "
                   "when they differ).")
@json_option
def vocab(out: Path | None, check: bool, as_json: bool) -> None:
    """Build the shared vocabulary that learned proposers read with (offline, in seconds).

    A byte-level BPE trained on the standard-library files the code-lm task reads and on
    the program views of every built-in grammar; its record names the Python and
    tokenizers versions, each file's SHA-256 and the views' hash. The same versions build
    the same bytes.
    """
    built = build_vocabulary()
    summary = {key: built.record[key] for key in
               ("vocab_size", "tokenizer_bytes", "tokenizer_sha256", "python", "tokenizers",
                "views")}
    if check:
        difference = vocabulary_difference(built)
        if difference is not None:
            shipped = shared_record()
            fail(f"{difference} (shipped: Python {shipped.get('python')}, tokenizers "
                 f"{shipped.get('tokenizers')}); rebuild it with `deepphoenix proposer vocab`")
        if as_json:
            echo_json({**summary, "same": True})
        else:
            click.echo(f"the shipped vocabulary ({vocabulary_dir()}) is what this builds")
        return
    path = write_vocabulary(built, out)
    if as_json:
        echo_json({**summary, "path": str(path)})
        return
    click.echo(f"wrote {path}: {summary['vocab_size']} tokens, "
               f"{summary['tokenizer_bytes']:,} bytes, from {len(built.record['stdlib'])} "
               f"standard-library files (Python {summary['python']}) and {summary['views']} "
               "view texts")


def _versions() -> dict[str, str]:
    """What the pretraining ran with (a model is rebuilt with the same, on two cores)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("deepphoenix", "torch", "transformers", "tokenizers"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "-"
    return found
