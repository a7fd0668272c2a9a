"""Commands of the learned proposer: dataset, train, propose."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import click

from deepphoenix.cli._common import (
    DEVICES,
    echo_json,
    fail,
    grammar_option,
    json_option,
    load_program,
    require_device,
    shown,
    staged_model,
)
from deepphoenix.cli._progress import ProgressBar, Reporter
from deepphoenix.errors import ConfigError, RunDirError
from deepphoenix.grammar import format_value
from deepphoenix.mutator import Program, TargetFormat, parse_program, resolve_grammar
from deepphoenix.outcome import Outcome
from deepphoenix.proposers._dataset import make_dataset, read_pairs, write_pairs
from deepphoenix.proposers._t5 import SampleSettings, T5Sampler, TrainSettings, prepare_data
from deepphoenix.proposers._tokenizer import PreTokenizer
from deepphoenix.sandbox import Worker, WorkerSettings
from deepphoenix.seeds import seed_source

__all__ = ["dataset", "propose", "train"]

FORMATS = click.Choice([f.value for f in TargetFormat])


def _template(source: str | None, grammar: str) -> Program:
    if source is None:
        text = seed_source("paper")
        return parse_program(text, resolve_grammar(grammar, text, "paper"), "paper")
    return load_program(source, grammar)


@click.command()
@click.option("-n", "count", type=click.IntRange(min=1), default=4096, show_default=True,
              help="How many refinement pairs.")
@click.option("--seed", "seed_", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--format", "fmt", type=FORMATS, default="source", show_default=True,
              help="Target: the whole refined source (paper) or a site=value edit script.")
@click.option("--source", type=click.Path(path_type=str), default=None,
              help="Template source whose style the pairs follow [default: the paper seed].")
@grammar_option
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="Where to write the JSON-lines dataset.")
def dataset(count: int, seed_: int, fmt: str, source: str | None, grammar: str,
            out: Path) -> None:
    """Generate the procedural code-refinement dataset (paper, section 3)."""
    template = _template(source, grammar)
    pairs = make_dataset(template, count, seed_, fmt)
    written = write_pairs(pairs, out, fmt)
    click.echo(f"wrote {written} {fmt} pairs to {out}")


@click.command()
@click.option("--source", type=click.Path(path_type=str), required=True,
              help="The source that defines the proposer model (and templates its data).")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Model directory to write (must not exist, or be empty).")
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True,
              help="Passes over the training pairs.")
@click.option("--samples", type=click.IntRange(min=1, max=10_000_000), default=None,
              help="Train on the first N pairs only [default: all].")
@click.option("--pairs", "pair_count", type=click.IntRange(min=1, max=10_000_000), default=4096,
              show_default=True, help="Pairs to generate when no --dataset is given.")
@click.option("--dataset", "dataset_path", type=click.Path(path_type=Path), default=None,
              help="Train on this JSON-lines dataset instead of generating one.")
@click.option("--format", "fmt", type=FORMATS, default="source", show_default=True,
              help="What the model learns to write: the whole refined source (paper) or a "
                   "site=value edit script.")
@click.option("--vocab-size", type=click.IntRange(min=261, max=262_144), default=1024,
              show_default=True,
              help="Size of the byte-level BPE trained on the pairs.")
@click.option("--pre-tokenizer", type=click.Choice([p.value for p in PreTokenizer]),
              default="digits", show_default=True,
              help="digits: digit runs split from other text (constrained decoding needs "
                   "it).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Pairs per optimizer step.")
@click.option("--lr", type=float, default=1e-3, show_default=True,
              help="AdamW learning rate.")
@click.option("--seed", "seed_", type=int, default=0, show_default=True,
              help="Seed of the data and of the model's initialisation and data order.")
@click.option("--device", type=DEVICES, default="auto", show_default=True,
              help="Where the model trains: auto uses CUDA when present.")
@click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True, max=43_200),
              default=None,
              help="Stop training after this many minutes.")
@grammar_option
@json_option
def train(source: str, out: Path, epochs: int, samples: int | None, pair_count: int,
          dataset_path: Path | None, fmt: str, vocab_size: int, pre_tokenizer: str,
          batch_size: int, lr: float, seed_: int, device: str, max_minutes: float | None,
          grammar: str, as_json: bool) -> None:
    """Train the T5 that SOURCE defines on refinement pairs; save it to OUT.

    The source is executed in a sandboxed worker to build the model (fresh weights, the
    vocabulary of a byte-level BPE trained here). Nothing is downloaded.
    """
    if out.exists() and any(out.iterdir()):
        raise RunDirError(f"{out}: exists and is not empty; choose another --out")
    require_device(device)
    template = load_program(source, grammar)
    if dataset_path is not None:
        pairs, file_format = read_pairs(dataset_path)
        if file_format != fmt:
            raise ConfigError(f"{dataset_path} holds {file_format} pairs but --format is {fmt}")
    else:
        pairs = make_dataset(template, pair_count, seed_, fmt)
    settings = TrainSettings(epochs=epochs, batch_size=batch_size, lr=lr, samples=samples,
                             seed=seed_,
                             max_seconds=None if max_minutes is None else max_minutes * 60)
    settings.validate()
    reporter = Reporter("json" if as_json else "auto")
    with staged_model(out) as staging:
        data = prepare_data(pairs, fmt, staging / "data", vocab_size, pre_tokenizer)
        bar = ProgressBar(reporter, "train")
        with Worker(WorkerSettings(threads=os.cpu_count() or 1, device=device,
                                   writable=(str(staging),))) as worker:
            _, report = T5Sampler.train(
                template.text, data, settings, worker, out=staging / "model",
                on_progress=lambda m: bar.update(m["step"], m["total"], loss=m["loss"]),
            )
        reporter.done()
    summary = {
        "model": str(out), "params": report.params, "steps": report.steps,
        "mean_loss": report.mean_loss, "final_loss": report.final_loss,
        "seconds": report.seconds, "device": report.device, "format": fmt,
        "vocab_size": data.vocab_size, "pairs": len(pairs), "stopped": report.stopped,
    }
    if as_json:
        echo_json(summary)
        return
    stopped = f", stopped early: {report.stopped}" if report.stopped else ""
    click.echo(f"trained {report.params / 1e6:.2f} M parameters for {report.steps} steps "
               f"in {report.seconds:.1f} s on {report.device}: final loss "
               f"{report.final_loss:.4f}{stopped}")
    click.echo(f"saved to {out}/")


@click.command()
@click.argument("file", type=click.Path(path_type=str))
@click.option("--model", "model_dir", type=click.Path(path_type=Path), required=True,
              help="A model directory written by `deepphoenix train`.")
@click.option("-n", "count", type=click.IntRange(min=1, max=256), default=8, show_default=True,
              help="How many candidates to sample.")
@click.option("--seed", "seed_", type=int, default=0, show_default=True,
              help="Sampling seed: the same seed gives the same candidates.")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="Sampling temperature (lower: more like the likeliest).")
@click.option("--top-k", type=click.IntRange(min=0), default=0, show_default=True,
              help="Keep the k likeliest tokens (0: all).")
@click.option("--top-p", type=click.FloatRange(min=0, max=1, min_open=True), default=1.0,
              show_default=True,
              help="Keep the likeliest tokens whose probabilities sum to p (1: all).")
@click.option("--unconstrained", is_flag=True,
              help="Sample freely (the paper); by default the model may only copy the "
                   "parent and choose inside site literals.")
@click.option("--rounds", type=click.IntRange(min=1), default=4, show_default=True,
              help="Draw again, up to this many draws in all, for candidates that repeat "
                   "an earlier one (1: keep repeats, as the paper).")
@click.option("--device", type=DEVICES, default="auto", show_default=True,
              help="Where the model samples: auto uses CUDA when present.")
@grammar_option
@json_option
def propose(file: str, model_dir: Path, count: int, seed_: int, temperature: float,
            top_k: int, top_p: float, unconstrained: bool, rounds: int, device: str, grammar: str,
            as_json: bool) -> None:
    """Sample N candidate edits of FILE from a trained model, each grounded on FILE.

    Model text is never executed: each output is parsed, reduced to edits at grammar sites
    and applied to FILE; the rest is rejected with a typed reason.
    """
    require_device(device)
    program = load_program(file, grammar)
    sampling = SampleSettings(temperature=temperature, top_k=top_k, top_p=top_p,
                              constrained=not unconstrained, rounds=rounds)
    with Worker(WorkerSettings(threads=os.cpu_count() or 1, device=device,
                               readable=(str(Path(model_dir).resolve()),))) as worker:
        proposer = T5Sampler.load(model_dir, worker, sampling)
        proposals = proposer.propose(program, count, seed_)
    rows: list[dict[str, Any]] = []
    for index, proposal in enumerate(proposals, start=1):
        m = proposal.mutation
        rows.append({
            "index": index, "outcome": m.outcome.value, "reason": m.reason,
            "hash": m.variant.hash if m.variant is not None else None,
            "edits": [e.to_dict() for e in m.variant.changes] if m.variant is not None else [],
            "text": proposal.text,
        })
    valid = [r for r in rows if r["outcome"] == Outcome.OK.value]
    counts = Counter(r["outcome"] for r in rows)
    if as_json:
        echo_json({"file": file, "model": str(model_dir), "format": proposer.format.value,
                   "constrained": not unconstrained, "candidates": rows,
                   "valid": len(valid), "outcomes": dict(counts), "draws": proposer.last_draws,
                   "seconds": proposer.last_seconds})
    else:
        _print_candidates(rows, counts, len(valid), proposer.last_draws,
                          proposer.last_seconds, unconstrained)
    if not valid:
        fail(f"no valid candidate for {file}: is it of the grammar the model was trained on "
             f"(--grammar {grammar})?")


def _print_candidates(rows: list[dict[str, Any]], counts: Counter[str], valid: int,
                      draws: int, seconds: float, unconstrained: bool) -> None:
    for row in rows:
        edits = ", ".join(f"{e['site']}={format_value(e['value'])}" for e in row["edits"])
        if row["outcome"] == Outcome.OK.value:
            click.echo(shown(f"#{row['index']} ok  {edits}  ({row['hash']})"))
        else:
            click.echo(shown(f"#{row['index']} {row['outcome']}: {row['reason']}"))
    tally = ", ".join(f"{n} {k}" for k, n in counts.most_common())
    click.echo(f"{valid} of {len(rows)} candidates valid and distinct ({tally}; "
               f"{draws} samples in {seconds:.2f} s, "
               f"{'constrained' if not unconstrained else 'unconstrained'})")
