"""Every registered proposer honours every domain of every built-in grammar: no candidate
is out of its domain (a grid on int and log-int sites, listed values, conditional and
derived sites, domains relative to the file), whatever the seed and the history.

The grammar-driven proposers run as a run makes them. The T5-based ones (``t5``,
``learned``, ``t5-only``) run the same way with a real, untrained T5 held in this process
(their worker's generate job, called directly): they guarantee their domains by
constrained decoding, which holds for any model, and random walks through the constraint
automaton (any model's choices) check it on every case and both formats.
"""

from __future__ import annotations

import functools
import random
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepphoenix.grammar import load_grammar
from deepphoenix.grammar._registry import GRAMMARS
from deepphoenix.mutator import Program, TargetFormat, ground, parse_program
from deepphoenix.outcome import Outcome
from deepphoenix.proposers import (
    Observation,
    ProposerContext,
    ProposerData,
    SampleSettings,
    T5Sampler,
    get_proposer,
    make_dataset,
    prepare_data,
    proposer_names,
)
from deepphoenix.proposers._constraint import ConstraintAutomaton, build_constraint
from deepphoenix.proposers._tokenizer import load_tokenizer
from deepphoenix.sandbox import JobResult, JobStatus
from deepphoenix.seeds import seed_source

FILES = Path(__file__).parents[1] / "grammar" / "files"

# Files of each built-in grammar's family: seeds, the project's own files in the style of
# nanoGPT and Llama, and a nanoGPT model shrunk to 2 x 64 (the user).
CASES: dict[str, tuple[str, ...]] = {
    "t5": ("seed:paper", "seed:tiny"),
    "t5-train": ("seed:tiny-train",),
    "gpt": ("seed:gpt",),
    "llama": ("file:configuration_llama_style.py",),
    "nanogpt": ("file:nanogpt_model.py", "file:nanogpt_train.py", "file:nanogpt_config.py",
                "small-nanogpt"),
    "quine": ("seed:quine-coords", "seed:quine-onehot", "seed:quine-rnn", "seed:quine-source"),
    "quine-sized": ("seed:quine-coords", "seed:quine-onehot"),
    "resnet": ("file:resnet_cifar_style.py",),
}
FLAT = [(grammar, case) for grammar, cases in CASES.items() for case in cases]
GRAMMAR_DRIVEN = ("random", "tpe", "gp", "random-gp", "random-gp-multi")
T5_BASED = ("t5", "learned", "t5-only")


@functools.cache
def program(grammar: str, case: str) -> Program:
    if case.startswith("seed:"):
        text = seed_source(case.removeprefix("seed:"))
    elif case.startswith("file:"):
        text = (FILES / case.removeprefix("file:")).read_text(encoding="utf-8")
    else:  # nanoGPT's GPTConfig shrunk by its user
        text = (FILES / "nanogpt_model.py").read_text(encoding="utf-8")
        for name, value in (("n_layer", 2), ("n_head", 2), ("n_embd", 64), ("block_size", 64)):
            text = re.sub(rf"(    {name}: int = )\d+", rf"\g<1>{value}", text)
    return parse_program(text, load_grammar(grammar), case)


def test_every_builtin_grammar_and_every_proposer_is_covered() -> None:
    assert set(CASES) == set(GRAMMARS.builtin_names())
    assert set(proposer_names()) == {*GRAMMAR_DRIVEN, *T5_BASED}
    kinds = {(spec.kind.value, bool(spec.domain.multiple_of), bool(spec.domain.values),
              spec.when is not None, spec.derived, spec.relative is not None)
             for grammar, case in FLAT for spec in program(grammar, case).grammar.sites
             if spec.name in program(grammar, case).present}
    # what the cases hold: grids on int and log-int sites, lists, when, derived, relative
    assert {("int", True), ("log-int", True)} <= {(k, g) for k, g, *_ in kinds}
    assert any(k[2] for k in kinds) and any(k[3] for k in kinds)
    assert any(k[4] for k in kinds) and any(k[5] for k in kinds)


def _check(parent: Program, proposals: list[Any]) -> None:
    for proposal in proposals:
        mutation = proposal.mutation
        assert mutation.outcome is not Outcome.OUT_OF_DOMAIN, (proposal.text, mutation.reason)
        if mutation.variant is not None and mutation.outcome is not Outcome.UNPARSEABLE:
            values = dict(mutation.variant.values)
            for spec in parent.grammar.sites:  # every written, active site in its domain
                declared = spec.proposable or spec.structural
                if (spec.name in values and declared
                        and parent.grammar.active(spec, values)):
                    assert spec.domain.contains(spec.kind, values[spec.name]), (
                        spec.name, values[spec.name], spec.describe_domain())


def _context(**fields: Any) -> ProposerContext:
    return ProposerContext(**{"run_dir": Path("."), "executor": None, "seed": 0, **fields})


def _search(proposer: Any, parent: Program, seed: int, batches: int = 2, n: int = 6) -> None:
    """Batches of candidates, each told back with made-up scores: past TPE's and GP's
    random start-up draws (10) into their model-based ones."""
    scores = random.Random(seed)
    for batch in range(batches):
        proposals = proposer.propose(parent, n, seed + batch)
        _check(parent, proposals)
        proposer.observe([Observation(parent.hash, p.mutation.variant.hash,
                                      dict(p.mutation.variant.values), "scored",
                                      scores.random())
                          for p in proposals if p.mutation.ok and p.mutation.variant])


@pytest.mark.parametrize(("grammar", "case"), FLAT)
@pytest.mark.parametrize("name", GRAMMAR_DRIVEN)
def test_grammar_driven_proposers_stay_in_every_domain(name: str, grammar: str,
                                                       case: str) -> None:
    @settings(max_examples=2 if name in ("random", "tpe") else 1, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(seed=st.integers(0, 2**20))
    def search(seed: int) -> None:
        _search(get_proposer(name, _context()), program(grammar, case), seed)

    search()


class InProcessLane:
    """The proposer's worker, here: the real generate job on a real, untrained T5."""

    def __init__(self, vocab_size: int) -> None:
        import torch
        import transformers

        from deepphoenix.sandbox._child import JobContext

        torch.manual_seed(0)
        config = transformers.T5Config(vocab_size=vocab_size, d_model=16, d_kv=8, d_ff=32,
                                       num_layers=1, num_decoder_layers=1, num_heads=2,
                                       pad_token_id=0, eos_token_id=2)
        self.context = JobContext(lambda message: None, Path("."), "cpu")
        self.context.state["proposer"] = {
            "model": transformers.T5ForConditionalGeneration(config).eval(),
            "key": "memory", "device": "cpu"}

    def run(self, job: Any, *, timeout: float | None = None, on_progress: Any = None
            ) -> JobResult:
        from deepphoenix.proposers._jobs import generate_job

        return JobResult(JobStatus.OK, generate_job(job, self.context))

    def close(self) -> None:
        return None


class InProcessExecutor:
    def __init__(self, lane: InProcessLane) -> None:
        self._lane = lane

    def lane(self, name: str) -> InProcessLane:
        return self._lane


@functools.cache
def proposer_data(grammar: str, case: str, fmt: str, folder: Path) -> ProposerData:
    parent = program(grammar, case)
    # a wide vocabulary, so that the longer files' pairs fit the model's 1,024 tokens
    return prepare_data(make_dataset(parent, 64, seed=0, fmt=fmt), fmt,
                        folder / f"{grammar}-{case}-{fmt}".replace(":", "_"), vocab_size=4096)


# One file per grammar end to end (the 2 x 64 nanoGPT for nanogpt), in the edits
# format; the source format writes whole programs, a thousand constrained steps for the
# longer files, so it runs end to end on the short ones. The walks cover every case.
E2E_CASES = [(g, cases[-1] if g == "nanogpt" else cases[0]) for g, cases in CASES.items()]
SOURCE_CASES = [(g, c) for g, c in E2E_CASES if len(program(g, c).text) < 3000]


@pytest.mark.parametrize(("grammar", "case", "fmt"),
                         [(g, c, "edits") for g, c in E2E_CASES]
                         + [(g, c, "source") for g, c in SOURCE_CASES])
@pytest.mark.parametrize("name", T5_BASED)
def test_t5_based_proposers_stay_in_every_domain(name: str, grammar: str, case: str, fmt: str,
                                                 tmp_path_factory: pytest.TempPathFactory
                                                 ) -> None:
    parent = program(grammar, case)
    data = proposer_data(grammar, case, fmt, tmp_path_factory.getbasetemp())
    lane = InProcessLane(data.vocab_size)
    proposer = get_proposer(name, _context(executor=InProcessExecutor(lane), data=data,
                                           sampling=SampleSettings(rounds=1)))
    # trained or not, it samples under the constraint: an untrained T5 stands for any
    proposer.drawers[0].model = T5Sampler(lane, data.tokenizer_path, TargetFormat(fmt),  # type: ignore[attr-defined]
                                          sampling=SampleSettings(rounds=1))
    _search(proposer, parent, seed=0, batches=1, n=2)
    assert proposer.name == name  # not a fallback


@pytest.mark.parametrize(("grammar", "case"), FLAT)
@pytest.mark.parametrize("fmt", ["edits", "source"])
def test_any_walk_through_the_constraint_stays_in_every_domain(
        grammar: str, case: str, fmt: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    parent = program(grammar, case)
    data = proposer_data(grammar, case, fmt, tmp_path_factory.getbasetemp())
    tokenizer = load_tokenizer(data.tokenizer_path)
    spec = build_constraint(parent, tokenizer, fmt)
    automaton = ConstraintAutomaton(
        spec, lambda text: tokenizer.encode(text, add_special_tokens=False).ids)
    rng = random.Random(0)
    for _ in range(20 if fmt == "edits" else 3):  # a source walk is a whole program
        generated: list[int] = []
        while True:
            token = rng.choice(automaton.allowed(generated))
            if token in (spec["eos"], spec["pad"]):
                break
            generated.append(token)
        mutation = ground(parent, tokenizer.decode(generated), fmt)
        assert mutation.outcome is not Outcome.OUT_OF_DOMAIN, mutation.reason
        assert mutation.outcome in (Outcome.OK, Outcome.INVARIANT), mutation.reason
