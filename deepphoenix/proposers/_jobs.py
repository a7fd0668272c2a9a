"""The learned proposer's jobs, run inside a sandbox worker: train the model a source
defines, and sample candidates from it. The parent (`T5Sampler`) grounds the samples."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from deepphoenix.proposers._constraint import ConstraintAutomaton
from deepphoenix.sandbox import GenerateJob, GenerateReport, JobContext, TrainJob, TrainReport
from deepphoenix.seeds import EOS_ID, PAD_ID
from deepphoenix.training import (
    Dynamics,
    TrainContext,
    count_parameters,
    exec_program,
    get_task,
    load_rows,
    seq2seq_model,
    train_model,
)

__all__ = ["generate_job", "train_job"]

_PROGRESS_EVERY = 0.5  # seconds between progress messages


def train_job(job: TrainJob, ctx: JobContext) -> dict[str, Any]:
    """Build the model `job.source` defines (fresh, or warm-started from the weights
    saved in `job.model_dir`), train it on the tokenized pairs with the program's own
    learning dynamics (its lr, batch size, optimizer, epochs and train(), where it defines
    them; the run's settings otherwise), save the checkpoint and keep the model for
    `generate_job`. Its value is a `TrainReport`'s dict."""
    import torch

    device = ctx.device()
    began = time.perf_counter()
    program = exec_program(job.source, ctx.workspace, job.seed, job.vocab_size)
    if job.model_dir:  # warm start: the weights an earlier training stage saved
        model = _from_pretrained(job.model_dir)
    else:
        model = seq2seq_model(program, job.vocab_size)
    model = model.to(device)
    dynamics = Dynamics.read(program, Dynamics(
        lr=job.lr, batch_size=job.batch_size, weight_decay=job.weight_decay,
        epochs=job.epochs))
    build_seconds = time.perf_counter() - began
    rows = load_rows(job.tokens, ctx.state.setdefault("rows", {}))
    if job.samples:
        rows = rows[:job.samples]
    last = [0.0]

    def on_step(step: int, total: int, loss: float) -> None:
        now = time.perf_counter()
        if now - last[0] >= _PROGRESS_EVERY or step == total:
            last[0] = now
            ctx.progress(step=step, total=total, loss=loss)

    training = TrainContext(get_task("refinement"), rows, device=device, seed=job.seed,
                            batch_size=dynamics.batch_size, epochs=dynamics.epochs,
                            shuffle=True, max_seconds=job.max_seconds, on_step=on_step)
    result = train_model(model, training, dynamics)
    model.eval()
    if job.out:
        folder = Path(job.out)
        folder.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(folder)
        shutil.copyfile(job.tokenizer, folder / "tokenizer.json")
        (folder / "source.py").write_text(job.source, encoding="utf-8")
        (folder / "losses.json").write_text(json.dumps(result.losses))
        # Readable by any user, as the run's other files are: `save_pretrained` writes the
        # weights 0600, so a run directory copied by its owner (`cp -r`, a backup restored)
        # gave the unprivileged workers that resume it a model they could not read.
        for path in folder.iterdir():
            if path.is_file():
                path.chmod(0o644)
    ctx.state["proposer"] = {"model": model, "key": str(job.out or "memory"), "device": device}
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return TrainReport.from_dict({
        **result.to_dict(), "build_seconds": build_seconds, "params": count_parameters(model),
        "device": device, "dynamics": dynamics.describe(),
    }).to_dict()


def _from_pretrained(model_dir: str) -> Any:
    """A model a training stage saved (the worker's environment turns transformers'
    progress bars off: their thread would retire the worker)."""
    import transformers

    return transformers.AutoModelForSeq2SeqLM.from_pretrained(model_dir)


def _proposer(ctx: JobContext, model_dir: str | None, device: str) -> Any:
    held = ctx.state.get("proposer")
    if held is not None and (model_dir is None or held["key"] == str(model_dir)):
        return held["model"]
    if model_dir is None:
        raise RuntimeError("no proposer model in this worker; train or load one first")
    model = _from_pretrained(model_dir).to(device).eval()
    ctx.state["proposer"] = {"model": model, "key": str(model_dir), "device": device}
    return model


def _number_encoder(ctx: JobContext, tokenizer_path: str) -> Any:
    cache = ctx.state.setdefault("tokenizers", {})
    tokenizer = cache.get(tokenizer_path)
    if tokenizer is None:
        from tokenizers import Tokenizer

        tokenizer = cache[tokenizer_path] = Tokenizer.from_file(tokenizer_path)
    return lambda text: tokenizer.encode(text, add_special_tokens=False).ids


def generate_job(job: GenerateJob, ctx: JobContext) -> dict[str, Any]:
    """Sample `n` outputs for one input, optionally under a constraint spec; the value is
    a `GenerateReport`'s dict."""
    import torch

    device = ctx.device()
    model = _proposer(ctx, job.model_dir, device)
    began = time.perf_counter()
    input_ids = torch.tensor([list(job.input_ids)], dtype=torch.long, device=device)
    kwargs: dict[str, Any] = {
        "do_sample": True, "num_return_sequences": job.n,
        "max_new_tokens": job.max_new_tokens, "temperature": job.temperature,
        "top_k": job.top_k, "top_p": job.top_p,
        "pad_token_id": PAD_ID, "eos_token_id": EOS_ID, "decoder_start_token_id": PAD_ID,
    }
    if job.constraint is not None:
        automaton = ConstraintAutomaton(job.constraint, _number_encoder(ctx, job.tokenizer))
        kwargs["prefix_allowed_tokens_fn"] = (
            lambda _batch, ids: automaton.allowed(ids.tolist()[1:])
        )
    if getattr(model.config, "is_encoder_decoder", False):
        # transformers 5 sizes the default cache by `num_hidden_layers`, which T5 maps to
        # the encoder's depth: a deeper decoder then fails with IndexError (the bug of
        # transformers PR #40277, back for T5). Caches built without a config grow per layer.
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache

        kwargs["past_key_values"] = EncoderDecoderCache(DynamicCache(), DynamicCache())
    torch.manual_seed(job.seed)
    with torch.no_grad():
        output = model.generate(input_ids=input_ids,
                                attention_mask=torch.ones_like(input_ids), **kwargs)
    sequences = []
    for row in output.tolist():
        ids = row[1:]
        if EOS_ID in ids:
            ids = ids[: ids.index(EOS_ID)]
        sequences.append([t for t in ids if t != PAD_ID])
    return GenerateReport(tuple(tuple(s) for s in sequences),
                          time.perf_counter() - began).to_dict()
