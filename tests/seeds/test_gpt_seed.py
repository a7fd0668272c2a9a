from __future__ import annotations

import importlib.util
import random
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch.nn import functional as F

import deepphoenix.seeds
from deepphoenix.corpus import build_lm_dataset
from deepphoenix.grammar import load_grammar
from deepphoenix.mutator import Program, parse_program
from deepphoenix.proposers import Refiner

SEED_PATH = Path(deepphoenix.seeds.__file__).parent / "gpt.py"
SEED_VALUES = {
    "n_layer": 2, "n_head": 4, "n_embd": 128, "dropout": 0.0, "activation": "gelu",
    "lr": 3e-3, "batch_size": 16, "weight_decay": 0.01, "optimizer": "adamw",
    # structural sites: the seed holds each one's first alternative (test_gpt_structure.py)
    "norm": "layernorm", "mlp": "plain", "position": "learned", "head": "tied",
    "block": "prenorm", "qk_norm": "off",
}
ARCHITECTURE = ("n_layer", "n_head", "n_embd", "dropout", "activation")


def load_source(path: Path, name: str) -> ModuleType:
    """Execute a seed file as module `name`; `@dataclass` looks the module up in
    `sys.modules`, so it is registered there (the caller removes it)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def seed() -> Iterator[ModuleType]:
    torch.manual_seed(0)
    try:
        yield load_source(SEED_PATH, "_deepphoenix_gpt_seed")
    finally:
        sys.modules.pop("_deepphoenix_gpt_seed", None)


@pytest.fixture(scope="module")
def program() -> Program:
    return parse_program(SEED_PATH.read_text(encoding="utf-8"), load_grammar("gpt"))


def test_seed_is_a_registered_seed() -> None:
    assert "gpt" in deepphoenix.seeds.seed_names()
    assert deepphoenix.seeds.seed_source("gpt") == SEED_PATH.read_text(encoding="utf-8")


def test_seed_defines_model_and_learning_dynamics(seed: ModuleType) -> None:
    assert isinstance(seed.model, seed.GPT)
    assert seed.model.config == seed.GPTConfig(n_layer=2, n_head=4, n_embd=128)
    assert (seed.lr, seed.batch_size, seed.weight_decay, seed.optimizer, seed.epochs) == (
        3e-3, 16, 0.01, "adamw", 1
    )


@pytest.mark.parametrize("length", [1, 17, 64])
def test_forward_returns_logits_only(seed: ModuleType, length: int) -> None:
    idx = torch.randint(0, 256, (3, length))
    logits = seed.model(idx)
    assert isinstance(logits, torch.Tensor)
    assert logits.shape == (3, length, 256)
    assert torch.isfinite(logits).all()


def test_forward_rejects_sequences_past_block_size(seed: ModuleType) -> None:
    with pytest.raises(AssertionError, match="block_size"):
        seed.model(torch.zeros(1, 65, dtype=torch.long))


def test_attention_is_causal(seed: ModuleType) -> None:
    model = seed.model.eval()
    idx = torch.randint(0, 256, (1, 12))
    changed = idx.clone()
    changed[0, 8:] = (changed[0, 8:] + 1) % 256
    with torch.no_grad():
        assert torch.allclose(model(idx)[0, :8], model(changed)[0, :8], atol=1e-5)
        assert not torch.allclose(model(idx)[0, 8:], model(changed)[0, 8:], atol=1e-5)


def test_head_is_tied_to_the_token_embedding(seed: ModuleType) -> None:
    assert seed.model.head.weight is seed.model.tok_emb.weight


def test_parameter_count_follows_n_layer(seed: ModuleType) -> None:
    def count(**kwargs: object) -> int:
        return sum(p.numel() for p in seed.GPT(seed.GPTConfig(**kwargs)).parameters())

    assert count(n_layer=1) < count(n_layer=2) < count(n_layer=3)
    assert count(n_layer=3) - count(n_layer=2) == count(n_layer=2) - count(n_layer=1)


@pytest.mark.parametrize("activation", ["gelu", "relu", "silu"])
def test_every_activation_builds_a_different_model(seed: ModuleType, activation: str) -> None:
    torch.manual_seed(0)
    model = seed.GPT(seed.GPTConfig(activation=activation))
    assert type(model.blocks[0].mlp.act) is seed.ACTIVATIONS[activation]
    assert model(torch.zeros(1, 4, dtype=torch.long)).shape == (1, 4, 256)


def test_a_few_steps_on_corpus_blocks_reduce_the_loss(seed: ModuleType) -> None:
    torch.manual_seed(0)
    model = seed.GPT(seed.GPTConfig(n_layer=1, n_embd=64))
    dataset = build_lm_dataset(64, 96, 16, seed=0)
    train = torch.tensor(dataset.train)
    heldout = torch.tensor(dataset.heldout)

    def loss_on(blocks: torch.Tensor) -> float:
        logits = model(blocks[:, :-1])
        return float(F.cross_entropy(logits.reshape(-1, 256), blocks[:, 1:].reshape(-1)))

    optimizer = torch.optim.AdamW(model.parameters(), lr=seed.lr, weight_decay=seed.weight_decay)
    with torch.no_grad():
        before = loss_on(heldout)
    for start in range(0, len(train), seed.batch_size):
        batch = train[start : start + seed.batch_size]
        loss = F.cross_entropy(model(batch[:, :-1]).reshape(-1, 256), batch[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = loss_on(heldout)
    assert before > 5.0  # about ln(256): an untrained model guesses
    assert after < before - 1.0


def test_grammar_finds_every_site_once(program: Program) -> None:
    assert program.values == SEED_VALUES
    assert {s.name for s in program.sites} == set(SEED_VALUES)
    labels = {s.name: s.label for s in program.sites}
    for name in ARCHITECTURE:
        assert labels[name] == f"GPTConfig({name}=…)"
    assert labels["lr"] == "lr"


def test_random_single_site_mutations_cover_every_site(program: Program) -> None:
    proposer = Refiner(max_edits=1)
    rng = random.Random(0)
    mutations = [proposer.refine(program, rng) for _ in range(200)]
    assert all(m.ok and m.variant is not None for m in mutations)
    variants = [m.variant for m in mutations if m.variant is not None]
    # the six structural sites have 9 single-move variants between them (2/5 of the draws)
    assert len({v.hash for v in variants}) >= 60
    changed: Counter[str] = Counter()
    for variant in variants:
        sites = {edit.site for edit in variant.changes}
        # one site moves; a coupled partner (moves_with) may follow to keep the invariant
        assert len(sites) == 1 or sites == {"n_head", "n_embd"}
        changed.update(sites)
        n_embd, n_head = variant.value("n_embd"), variant.value("n_head")
        assert isinstance(n_embd, int) and isinstance(n_head, int)
        assert n_embd % n_head == 0
    for variant in variants[:10]:  # re-parsing is slow; the mutator's own tests sweep it
        assert parse_program(variant.source, program.grammar).values == dict(variant.values)
    assert set(changed) == {s.name for s in program.proposable} == set(SEED_VALUES)


def test_architecture_variants_build_and_run(program: Program, tmp_path: Path) -> None:
    """The first random variant at each architecture site executes and runs forward."""
    proposer = Refiner(max_edits=1)
    rng = random.Random(1)
    built: set[str] = set()
    for index in range(200):
        variant = proposer.refine(program, rng).variant
        assert variant is not None
        site = variant.changes[0].site
        if site not in ARCHITECTURE or site in built:
            continue
        path = tmp_path / f"variant_{index}.py"
        path.write_text(variant.source, encoding="utf-8")
        name = f"_deepphoenix_gpt_variant_{index}"
        try:
            module = load_source(path, name)
        finally:
            sys.modules.pop(name, None)
        assert getattr(module.model.config, site) == variant.value(site)
        assert module.model(torch.zeros(2, 8, dtype=torch.long)).shape == (2, 8, 256)
        built.add(site)
    assert built == set(ARCHITECTURE)
