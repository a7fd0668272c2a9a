"""`T5Sampler`: a T5 trained and sampled in a sandbox worker, for the proposers that use
one (`t5`, `learned`); it is not itself a `Proposer`. The model is whatever the source
under evolution defines (the self-reference). It reads its parent's whole source (the
paper's ``t5``) or its program view (``learned``, ``t5-only``: `proposers._view`; the
run's data say which, and a saved model records it). Its outputs are text: each is
grounded against the trusted parent (parsed, reduced to edits at grammar sites, applied
to the parent's CST) and never executed.

A model directory holds ``model.safetensors``, ``config.json``, ``generation_config.json``
(from ``save_pretrained``), ``tokenizer.json``, ``source.py`` (the source that defined the
model), ``losses.json`` (every training step) and ``proposer.json`` (format, view
version and settings).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from deepphoenix.errors import CheckpointError, ConfigError, WorkerError
from deepphoenix.executor import Lane
from deepphoenix.mutator import Mutation, Program, TargetFormat, canonical_hash, ground
from deepphoenix.proposers._constraint import build_constraint
from deepphoenix.proposers._dataset import RefinementPair
from deepphoenix.proposers._distinct import draw_distinct, round_seed
from deepphoenix.proposers._records import Proposal, ProposerData, SampleSettings, TrainSettings
from deepphoenix.proposers._tokenizer import PreTokenizer, load_tokenizer, train_tokenizer
from deepphoenix.proposers._view import VIEW_VERSION, full_script, view_text
from deepphoenix.sandbox import GenerateJob, GenerateReport, JobResult, TrainJob, TrainReport
from deepphoenix.store_io import write_text_atomic

__all__ = [
    "MAX_TOKENS",
    "ProposerData",
    "SampleSettings",
    "T5Sampler",
    "TrainSettings",
    "longest_pair",
    "model_format",
    "model_view",
    "prepare_data",
    "too_long_message",
]

MAX_TOKENS = 1024  # the longest input or target a proposer's T5 reads or writes


def prepare_data(pairs: Sequence[RefinementPair], fmt: TargetFormat | str, folder: Path,
                 vocab_size: int = 1024,
                 pre_tokenizer: PreTokenizer | str = PreTokenizer.DIGITS,
                 tokenizer_from: Path | None = None, view: int | None = None,
                 too_long: Callable[[int], str] | None = None) -> ProposerData:
    """Train the tokenizer on the pairs (both formats' texts) and tokenize them once.
    `tokenizer_from`: use this tokenizer file instead (a pretrained proposer's, whose
    embeddings it indexes). `view`: the pairs are program views of this version (None:
    whole sources). A pair over `MAX_TOKENS` is a `ConfigError`; `too_long(tokens)` says
    it in the caller's words."""
    fmt = TargetFormat(fmt)
    tokenizer = _pairs_tokenizer(pairs, vocab_size, pre_tokenizer, tokenizer_from)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer_path = folder / "tokenizer.json"
    write_text_atomic(tokenizer_path, tokenizer.to_str(pretty=False))
    inputs = [e.ids for e in tokenizer.encode_batch([p.input for p in pairs])]
    labels = [e.ids for e in tokenizer.encode_batch([p.target for p in pairs])]
    longest = max(max(len(x) for x in inputs), max(len(y) for y in labels))
    if longest > MAX_TOKENS:
        raise ConfigError(too_long(longest) if too_long is not None
                          else too_long_message(longest, view, tokenizer_from))
    tokens_path = folder / "tokens.json"
    write_text_atomic(tokens_path, json.dumps({"input_ids": inputs, "labels": labels},
                                              separators=(",", ":")))
    return ProposerData(
        tokenizer_path=tokenizer_path, tokens_path=tokens_path, format=fmt,
        vocab_size=tokenizer.get_vocab_size(), pairs=len(pairs),
        mean_input_tokens=sum(map(len, inputs)) / len(inputs),
        mean_target_tokens=sum(map(len, labels)) / len(labels), view=view,
    )


def longest_pair(pairs: Sequence[RefinementPair], vocab_size: int = 1024,
                 pre_tokenizer: PreTokenizer | str = PreTokenizer.DIGITS,
                 tokenizer_from: Path | None = None) -> int:
    """Tokens in the longest input or target of `pairs`, under the tokenizer
    `prepare_data` would use for them (trained on them, or `tokenizer_from`). On the first
    few pairs of a dataset it is a quick check, made before the dataset: the BPE of a few
    dozen refinements of one program learns that program's merges."""
    tokenizer = _pairs_tokenizer(pairs, vocab_size, pre_tokenizer, tokenizer_from)
    texts = [text for pair in pairs for text in (pair.input, pair.target)]
    return max(len(e.ids) for e in tokenizer.encode_batch(texts))


def too_long_message(tokens: int, view: int | None, tokenizer_from: Path | None = None) -> str:
    """Why pairs of `tokens` tokens cannot be read, and what to do (one line)."""
    if tokenizer_from is not None:
        return (f"with the tokenizer of {tokenizer_from} (a --proposer-init model, its BPE "
                f"trained on other programs) a refinement pair of this program is {tokens} "
                f"tokens long, over the {MAX_TOKENS} limit; pretrain on runs of programs "
                "like this one, or start cold")
    if view is not None:
        return (f"the program view is {tokens} tokens long, over the {MAX_TOKENS} limit: "
                "the grammar proposes too many sites for one view; give it fewer (mutable "
                "= false holds a site as written), or propose with tpe, gp or random")
    return (f"a refinement pair is {tokens} tokens long, over the {MAX_TOKENS} limit; use a "
            "shorter seed source or a larger vocabulary")


def _pairs_tokenizer(pairs: Sequence[RefinementPair], vocab_size: int,
                     pre_tokenizer: PreTokenizer | str, tokenizer_from: Path | None) -> Any:
    if tokenizer_from is not None:
        return load_tokenizer(tokenizer_from)
    texts = [text for pair in pairs for text in (pair.input, pair.target)]
    return train_tokenizer(texts, vocab_size, pre_tokenizer)


class T5Sampler:
    """Samples candidate edits from a trained model held by a sandbox worker."""

    name = "t5"

    def __init__(self, worker: Lane, tokenizer_path: Path, fmt: TargetFormat,
                 model_dir: Path | None = None, sampling: SampleSettings | None = None,
                 timeout: float | None = 600.0, view: int | None = None) -> None:
        self.worker = worker
        self.tokenizer_path = Path(tokenizer_path).resolve()
        self.tokenizer = load_tokenizer(self.tokenizer_path)
        self.format = TargetFormat(fmt)
        self.view = view  # the program view's version the model reads (None: the source)
        self.model_dir = Path(model_dir).resolve() if model_dir is not None else None
        self.sampling = sampling or SampleSettings()
        self.sampling.validate()
        self.timeout = timeout
        self.last_seconds = 0.0
        self.last_draws = 0

    # -- training ------------------------------------------------------------------------
    @classmethod
    def train(cls, source: str, data: ProposerData, settings: TrainSettings, worker: Lane,
              out: Path | None = None, sampling: SampleSettings | None = None,
              on_progress: Callable[[dict[str, Any]], None] | None = None,
              timeout: float | None = None, tokens: Path | None = None,
              init_from: Path | None = None) -> tuple[T5Sampler, TrainReport]:
        """Build the model `source` defines (in the worker), train it, save it to `out`.
        `tokens`: train on these tokenized pairs instead of the run's refinement pairs;
        `init_from`: start from the weights of a model directory `train` wrote."""
        settings.validate()
        # Paths cross into a worker whose working directory differs: make them absolute.
        job = TrainJob(source=source, vocab_size=data.vocab_size,
                       tokens=str((tokens or data.tokens_path).resolve()),
                       tokenizer=str(data.tokenizer_path.resolve()),
                       out=str(out.resolve()) if out else None,
                       model_dir=str(init_from.resolve()) if init_from else None,
                       **asdict(settings))
        result = worker.run(job, timeout=timeout, on_progress=on_progress)
        report = replace(TrainReport.from_dict(_value_or_raise(result, "training the proposer")),
                         warm_start=str(init_from) if init_from else None)
        if out is not None:
            meta = {
                "format": data.format.value, "view": data.view, "vocab_size": data.vocab_size,
                "source_hash": canonical_hash(source), "train": asdict(settings),
                **report.summary(),
            }
            write_text_atomic(out / "proposer.json", json.dumps(meta, indent=2))
        proposer = cls(worker, data.tokenizer_path if out is None else out / "tokenizer.json",
                       data.format, model_dir=out, sampling=sampling, view=data.view)
        return proposer, report

    @classmethod
    def load(cls, model_dir: Path, worker: Lane,
             sampling: SampleSettings | None = None) -> T5Sampler:
        """A proposer from a model directory written by `train`."""
        model_dir = Path(model_dir)
        fmt = model_format(model_dir)
        return cls(worker, model_dir / "tokenizer.json", fmt, model_dir=model_dir,
                   sampling=sampling, view=model_view(model_dir))

    # -- sampling ------------------------------------------------------------------------
    def sample_texts(self, parent: Program, n: int, seed: int,
                     prepared: GenerateJob | None = None) -> list[str]:
        """`n` raw model outputs for the parent (untrusted text). `prepared` is what
        `prepare` gave for this parent, to reuse across draws."""
        job = replace(prepared or self.prepare(parent), n=n, seed=seed)
        result = self.worker.run(job, timeout=self.timeout)
        report = GenerateReport.from_dict(_value_or_raise(result, "sampling candidates"))
        self.last_seconds = report.seconds
        return [self.tokenizer.decode(list(ids)) for ids in report.sequences]

    def read(self, parent: Program) -> str:
        """What the model reads of `parent`: its program view, or (the paper) its source."""
        return view_text(parent) if self.view is not None else parent.text

    def ground(self, parent: Program, text: str) -> Mutation:
        """A model output reduced to edits on the trusted parent. A view-reading model
        writes edit scripts in both formats (the ``source`` one names every numeric site)."""
        return ground(parent, text, TargetFormat.EDITS if self.view is not None
                      else self.format)

    def prepare(self, parent: Program) -> GenerateJob:
        """The generation job for a parent, to be given `n` and `seed`: its tokens and
        (constrained) the automaton, built once per parent."""
        input_ids = self.tokenizer.encode(self.read(parent)).ids
        if len(input_ids) > MAX_TOKENS:
            what = "program view" if self.view is not None else "parent"
            raise ConfigError(f"the {what} is {len(input_ids)} tokens long, over the "
                              f"{MAX_TOKENS}-token limit of the proposer")
        constraint = None
        if self.sampling.constrained:
            constraint = build_constraint(parent, self.tokenizer, self.format,
                                          self.sampling.forbid_no_op,
                                          view=self.view is not None)
        if self.format is TargetFormat.EDITS:
            max_new = 32
        elif self.view is not None:  # the full script: the view's numeric sites
            max_new = len(self.tokenizer.encode(full_script(parent)[0]).ids) + 16
        else:
            max_new = len(input_ids) + 32
        return GenerateJob(
            input_ids=tuple(input_ids), max_new_tokens=max_new, n=0, seed=0,
            temperature=self.sampling.temperature, top_k=self.sampling.top_k,
            top_p=self.sampling.top_p, constraint=constraint,
            tokenizer=str(self.tokenizer_path),
            model_dir=str(self.model_dir) if self.model_dir else None,
        )

    def propose(self, parent: Program, n: int, seed: int,
                exclude: Collection[str] = ()) -> list[Proposal]:
        """`n` grounded candidates, distinct where the model allows.

        A trained model is confident, so a batch of samples repeats itself: repeats (and
        variants in `exclude`) are drawn again by `draw_distinct`, each round a full
        seeded batch, up to `sampling.rounds` rounds. `last_draws` says how many samples
        were drawn, `last_seconds` how long sampling took.
        """
        prepared = self.prepare(parent)
        self.last_draws = 0
        seconds = 0.0

        def draw(round_: int, _open: int) -> list[Proposal]:
            nonlocal seconds
            draw_seed = round_seed(seed, round_)
            texts = self.sample_texts(parent, n, draw_seed, prepared)
            self.last_draws += len(texts)
            seconds += self.last_seconds
            return [Proposal(self.ground(parent, text), text) for text in texts]

        proposals = draw_distinct(draw, n, self.sampling.rounds, exclude)
        self.last_seconds = seconds
        return proposals


def model_format(model_dir: Path) -> TargetFormat:
    """The format of the proposer model saved in `model_dir` (by `T5Sampler.train`);
    `CheckpointError`, saying what is missing, for a folder that holds none."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise CheckpointError(f"{model_dir}: no such model directory")
    missing = [name for name in ("config.json", "tokenizer.json", "proposer.json")
               if not (model_dir / name).exists()]
    if not any(model_dir.glob("*.safetensors")):
        missing.append("model.safetensors")
    if missing:
        raise CheckpointError(f"{model_dir}: not a deepphoenix model (missing "
                              f"{', '.join(missing)}); train one with `deepphoenix train` "
                              "or `deepphoenix proposer pretrain`")
    try:
        meta = json.loads((model_dir / "proposer.json").read_text())
        return TargetFormat(meta["format"])
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise CheckpointError(f"{model_dir}/proposer.json is unreadable ({exc})") from None


def model_view(model_dir: Path) -> int | None:
    """The program view's version the model in `model_dir` reads (None: whole sources);
    `CheckpointError` for a view this deepphoenix does not write."""
    try:
        view = json.loads((Path(model_dir) / "proposer.json").read_text()).get("view")
    except (ValueError, OSError, AttributeError) as exc:
        raise CheckpointError(f"{model_dir}/proposer.json is unreadable ({exc})") from None
    if view is not None and view != VIEW_VERSION:
        raise CheckpointError(f"{model_dir}: the model reads program view version {view}; "
                              f"this deepphoenix writes version {VIEW_VERSION}")
    return None if view is None else int(view)


def _value_or_raise(result: JobResult, doing: str) -> dict[str, Any]:
    if result.ok:
        value: dict[str, Any] = result.value
        return value
    detail = result.error or result.status.value
    raise WorkerError(f"{doing} failed in the worker ({result.status.value}): {detail}")

