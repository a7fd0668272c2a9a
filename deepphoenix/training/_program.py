"""Execute a program and read what it defines: its ``model``, its learning dynamics and
its own ``train()``. Runs inside a worker (imports torch when the program needs it).

A program is executed as a fresh module registered in ``sys.modules`` (so ``@dataclass``
and anything else that looks its module up works), with ``transformers`` and ``torch``
already in its namespace when it names either or the worker has them (the paper's snippet
uses ``transformers`` without importing it), in the worker's workspace, where
``Salesforce/codet5-small/config.json`` is written from the shipped CodeT5-small config
with the run's vocabulary size, so ``from_pretrained("Salesforce/codet5-small")`` reads a
local directory and nothing is fetched. ``__file__`` is ``program.py`` in the workspace,
holding the source. Only trusted sources reach this: a seed, a user's file, or a trusted
parent with literal edits.

What a program may define (Algorithm 1 of the paper: "if source defines a model then
model ← model as defined in source; if source defines a train() function then train() ←
train() as defined in source"):

- ``model``: a ``torch.nn.Module`` (a transformers seq2seq model for the refinement task);
- ``lr``, ``batch_size``, ``weight_decay``, ``epochs``: numbers, and ``optimizer``: one of
  ``adamw``, ``adam``, ``sgd``, ``rmsprop`` or a ``torch.optim.Optimizer`` subclass;
- ``train(model, ctx)``: replaces the built-in training loop (see `TrainContext`).
"""

from __future__ import annotations

import json
import math
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from deepphoenix.seeds import BOS_ID, CODET5_DIR, EOS_ID, PAD_ID, codet5_config

__all__ = ["OPTIMIZERS", "PROGRAM_MODULE", "BuildFailure", "Dynamics", "count_parameters",
           "exec_program", "make_optimizer", "program_model", "seq2seq_model",
           "write_codet5_config"]

PROGRAM_MODULE = "__deepphoenix_program__"
OPTIMIZERS = ("adamw", "adam", "sgd", "rmsprop")


class BuildFailure(Exception):
    """The source ran but does not define a usable model or usable learning dynamics."""


def write_codet5_config(workspace: Path, vocab_size: int) -> Path:
    folder = workspace / CODET5_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps(codet5_config(vocab_size), indent=1))
    return path


def exec_program(source: str, workspace: Path, seed: int,
                 vocab_size: int = 32100) -> Mapping[str, Any]:
    """Execute `source` with torch seeded by `seed`; a read-only mapping of the names it
    defined (dunder names left out).

    Torch and transformers are imported only for a program that names them (or when the
    worker has them already): a program that needs neither does not pay seconds and
    hundreds of MiB for them."""
    code = compile(source, "<program>", "exec")
    names = _global_names(code)
    module = types.ModuleType(PROGRAM_MODULE)
    if any(name in names or name in sys.modules for name in ("torch", "transformers")):
        import torch
        import transformers

        module.__dict__.update(transformers=transformers, torch=torch)
        torch.manual_seed(seed)
    write_codet5_config(workspace, vocab_size)
    # __file__ is the program's text in the workspace, as when run with python (a source
    # quine reads its own text from there).
    own_file = workspace / "program.py"
    own_file.write_text(source, encoding="utf-8")
    module.__file__ = str(own_file)
    sys.modules[PROGRAM_MODULE] = module  # the previous program's module is dropped
    exec(code, module.__dict__)  # trusted: see the module docstring
    return types.MappingProxyType({k: v for k, v in module.__dict__.items()
                                   if not k.startswith("__")})


def _global_names(code: types.CodeType) -> set[str]:
    """The names `code` and every function and class in it look up or import."""
    found = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= _global_names(const)
    return found


def program_model(program: Mapping[str, Any]) -> Any:
    """The program's ``model``: any ``torch.nn.Module``."""
    import torch

    model = program.get("model")
    if model is None:
        raise BuildFailure("the source defines no `model`")
    if not isinstance(model, torch.nn.Module):
        raise BuildFailure(f"`model` is a {type(model).__name__}, not a torch.nn.Module")
    return model


def counted_model(program: Mapping[str, Any], uses_task: bool, task: str,
                  vocab_size: int) -> Any:
    """The model a run counts and trains: on the run's task (a built-in objective) the
    seq2seq model at its vocabulary (refinement) or the program's ``model`` (code-lm);
    for any other objective whatever ``model`` is (None when the program defines none)."""
    if not uses_task:
        return program.get("model")
    if task == "refinement":
        return seq2seq_model(program, vocab_size)
    return program_model(program)


def is_module(value: Any) -> bool:
    """Whether `value` is a ``torch.nn.Module`` (without importing torch when no code has)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.nn.Module)


def seq2seq_model(program: Mapping[str, Any], vocab_size: int) -> Any:
    """The program's ``model`` as a transformers encoder-decoder that can generate, its
    vocabulary sized to the tokenizer and its special-token ids set to ours."""
    model: Any = program_model(program)
    if not hasattr(model, "generate") or not getattr(getattr(model, "config", None),
                                                      "is_encoder_decoder", False):
        raise BuildFailure(
            f"`model` is a {type(model).__name__}, not a transformers encoder-decoder "
            "(seq2seq) model; score it with --objective or --task code-lm, and propose with "
            "--proposer random or a --proposer-source")
    config = model.config
    if getattr(config, "vocab_size", vocab_size) != vocab_size:
        model.resize_token_embeddings(vocab_size)
    config.pad_token_id, config.bos_token_id, config.eos_token_id = PAD_ID, BOS_ID, EOS_ID
    config.decoder_start_token_id = PAD_ID
    return model


def count_parameters(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))


@dataclass(frozen=True, slots=True)
class Dynamics:
    """How a model is trained: the run's defaults, overridden by what the program defines.

    The few-shot score keeps its budget whatever the program says (one epoch over the
    run's first N samples): `epochs` applies to the proposer's training stage only.
    """

    lr: float = 1e-3  # AdamW's learning rate
    batch_size: int = 16
    weight_decay: float = 0.01
    epochs: int = 1
    optimizer: Any = "adamw"  # adamw | adam | sgd | rmsprop | a torch.optim.Optimizer subclass
    train: Callable[..., Any] | None = None  # the program's own train(model, ctx)

    def describe(self) -> dict[str, Any]:
        """The dynamics as plain values, for the metrics."""
        optimizer = self.optimizer if isinstance(self.optimizer, str) else getattr(
            self.optimizer, "__name__", str(self.optimizer))
        return {"lr": self.lr, "batch_size": self.batch_size,
                "weight_decay": self.weight_decay, "optimizer": optimizer,
                "own_train": self.train is not None}

    @classmethod
    def read(cls, program: Mapping[str, Any], defaults: Dynamics) -> Dynamics:
        """`defaults` with every value the program defines; `BuildFailure` for a value
        that cannot be used (named, with its value and type)."""
        found: dict[str, Any] = {}
        for name in ("lr", "weight_decay"):
            if name in program:
                found[name] = _number(name, program[name], minimum=0.0,
                                      open_min=name == "lr")
        for name in ("batch_size", "epochs"):
            if name in program:
                found[name] = _whole(name, program[name])
        if "optimizer" in program:
            found["optimizer"] = _optimizer(program["optimizer"])
        if "train" in program:
            train = program["train"]
            if not callable(train):
                raise BuildFailure(f"`train` is a {type(train).__name__}, not a function")
            found["train"] = train
        return replace(defaults, **found)


def _number(name: str, value: Any, minimum: float, open_min: bool) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and (value > minimum or (not open_min and value == minimum)):
        return float(value)
    bound = f"> {minimum:g}" if open_min else f">= {minimum:g}"
    raise BuildFailure(f"Expected a finite number {bound} but got {name}={value!r} "
                       f"(type={type(value).__name__})")


def _whole(name: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise BuildFailure(f"Expected int >= 1 but got {name}={value!r} "
                       f"(type={type(value).__name__})")


def _optimizer(value: Any) -> Any:
    import torch

    if isinstance(value, str) and value.lower() in OPTIMIZERS:
        return value.lower()
    if isinstance(value, type) and issubclass(value, torch.optim.Optimizer):
        return value
    raise BuildFailure(f"Expected one of {', '.join(OPTIMIZERS)} or a torch.optim.Optimizer "
                       f"class but got optimizer={value!r} (type={type(value).__name__})")


def make_optimizer(dynamics: Dynamics, parameters: Any) -> Any:
    """The optimizer the dynamics name, over `parameters`."""
    import torch

    choice = dynamics.optimizer
    if choice == "adamw":
        return torch.optim.AdamW(parameters, lr=dynamics.lr, weight_decay=dynamics.weight_decay)
    if choice == "adam":
        return torch.optim.Adam(parameters, lr=dynamics.lr, weight_decay=dynamics.weight_decay)
    if choice == "sgd":
        return torch.optim.SGD(parameters, lr=dynamics.lr, weight_decay=dynamics.weight_decay,
                               momentum=0.9)
    if choice == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=dynamics.lr,
                                   weight_decay=dynamics.weight_decay)
    return choice(parameters, lr=dynamics.lr, weight_decay=dynamics.weight_decay)
