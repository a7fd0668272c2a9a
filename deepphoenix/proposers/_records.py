"""The records the proposer seam passes around, apart from any proposer: a candidate
(`Proposal`), a run's refinement data (`ProposerData`), and the settings of a training
stage and of sampling (`TrainSettings`, `SampleSettings`). The protocol (`_protocol`) and
every proposer import them from here, so the protocol imports no implementation."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from deepphoenix.errors import ConfigError
from deepphoenix.mutator import Mutation, TargetFormat

__all__ = ["Proposal", "ProposerData", "SampleSettings", "TrainSettings"]


@dataclass(frozen=True, slots=True)
class Proposal:
    """One candidate: the grounded mutation and the text it came from (a model's output,
    or the edit script a random draw amounts to)."""

    mutation: Mutation
    text: str
    # Which of a proposer's drawers made it (``learned``'s pool: "t5", "gp", "draw");
    # recorded with the attempt, "" where a proposer has one drawer.
    source: str = ""


@dataclass(frozen=True, slots=True)
class ProposerData:
    """A run's tokenizer and tokenized refinement dataset, made once per run: of whole
    sources, or of program views (`view` says which)."""

    tokenizer_path: Path
    tokens_path: Path
    format: TargetFormat
    vocab_size: int
    pairs: int
    mean_input_tokens: float
    mean_target_tokens: float
    # The program view's version the pairs were written in (`proposers._view`); None: the
    # whole source (the paper's t5, and runs written before views).
    view: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(tokenizer_path=str(self.tokenizer_path), tokens_path=str(self.tokens_path),
                    format=self.format.value)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProposerData:
        return cls(**{**data, "tokenizer_path": Path(data["tokenizer_path"]),
                      "tokens_path": Path(data["tokens_path"]),
                      "format": TargetFormat(data["format"])})


@dataclass(frozen=True, slots=True)
class TrainSettings:
    """The training stage. Typical CPU values train a tiny T5 in a minute or two."""

    epochs: int = 3  # passes over the (first `samples`) pairs
    batch_size: int = 32
    lr: float = 1e-3  # AdamW
    weight_decay: float = 0.01
    samples: int | None = None  # None: every pair
    seed: int = 0  # model init and data order
    max_seconds: float | None = None  # stop early after this much training time

    def with_seed(self, seed: int) -> TrainSettings:
        return replace(self, seed=seed)

    def validate(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"Expected int >= 1 but got {name}={value!r} "
                                  f"(type={type(value).__name__})")
        if not (isinstance(self.lr, int | float) and self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"Expected a positive float but got lr={self.lr!r}")


@dataclass(frozen=True, slots=True)
class SampleSettings:
    """How candidates are sampled."""

    temperature: float = 1.0
    top_k: int = 0  # 0: no top-k cut
    top_p: float = 1.0
    constrained: bool = True  # copy the parent, choose only inside site literals
    forbid_no_op: bool = True  # under constraints, never sample the parent itself
    rounds: int = 4  # draw again, up to this many rounds, for slots that repeat a candidate

    def validate(self) -> None:
        if not isinstance(self.rounds, int) or self.rounds < 1:
            raise ConfigError(f"Expected int >= 1 but got rounds={self.rounds!r}")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ConfigError(f"Expected temperature > 0 but got {self.temperature!r}")
        if self.top_k < 0:
            raise ConfigError(f"Expected top_k >= 0 but got {self.top_k!r}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"Expected 0 < top_p <= 1 but got {self.top_p!r}")
