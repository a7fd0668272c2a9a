"""The `gpt` grammar's structural sites on the `gpt` seed: every alternative (and a few
combinations) renders through the mutator, builds, runs forward and backward and trains a
few steps; parameter counts stay where each alternative says they do."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch.nn import functional as F

import deepphoenix.seeds
from deepphoenix.grammar import load_grammar
from deepphoenix.mutator import Program, parse_program

SEED_PATH = Path(deepphoenix.seeds.__file__).parent / "gpt.py"
STRUCTURAL = {  # site -> alternatives, the seed's own first
    "norm": ("layernorm", "rmsnorm"),
    "mlp": ("plain", "relu2", "swiglu"),
    "position": ("learned", "rotary", "none"),
    "head": ("tied", "untied"),
    "block": ("prenorm", "postnorm", "parallel"),
    "qk_norm": ("off", "on"),
}
SMALL = {"n_layer": 1, "n_head": 2, "n_embd": 64, "block_size": 32}
_counter = itertools.count()


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models: one thread is fastest, and on a shared machine by far."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def program() -> Program:
    return parse_program(SEED_PATH.read_text(encoding="utf-8"), load_grammar("gpt"))


def load(source: str, tmp_path: Path) -> ModuleType:
    """Execute a variant's source as a fresh module (registered while it runs, for
    `@dataclass`)."""
    import importlib.util

    name = f"_deepphoenix_gpt_structure_{next(_counter)}"
    path = tmp_path / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def variant_module(program: Program, choices: dict[str, str], tmp_path: Path) -> ModuleType:
    """The program with `choices` made (the seed itself when they are all its own)."""
    if all(program.values[site] == name for site, name in choices.items()):
        return load(program.text, tmp_path)
    mutation = program.apply(choices)
    assert mutation.ok and mutation.variant is not None, mutation
    for site, name in choices.items():
        assert mutation.variant.value(site) == name
    return load(mutation.variant.source, tmp_path)


def count(module: ModuleType) -> int:
    torch.manual_seed(0)
    model = module.GPT(module.GPTConfig(**SMALL))
    return sum(p.numel() for p in model.parameters())


def test_the_seed_holds_each_sites_first_alternative(program: Program) -> None:
    structural = {s.name: s for s in program.grammar.sites if s.name in STRUCTURAL}
    assert set(structural) == set(STRUCTURAL)
    for site, names in STRUCTURAL.items():
        assert tuple(structural[site].domain.choices) == names
        assert program.values[site] == names[0]
    # rendering the seed's own choices gives the seed back, byte for byte
    own = program.apply({site: names[0] for site, names in STRUCTURAL.items()})
    assert own.variant is None or own.variant.source == program.text


def train_a_few_steps(module: ModuleType) -> tuple[float, float]:
    """Loss before and after 6 AdamW steps on one fixed batch of bytes."""
    torch.manual_seed(0)
    model = module.GPT(module.GPTConfig(**SMALL))
    batch = torch.randint(0, 256, (4, SMALL["block_size"] + 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(6):
        logits = model(batch[:, :-1])
        assert logits.shape == (4, SMALL["block_size"], 256)
        loss = F.cross_entropy(logits.reshape(-1, 256), batch[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
        optimizer.step()
        losses.append(loss.item())
    return losses[0], losses[-1]


CASES = [{site: name} for site, names in STRUCTURAL.items() for name in names[1:]] + [
    {site: names[-1] for site, names in STRUCTURAL.items()},
    {"norm": "rmsnorm", "mlp": "swiglu", "position": "rotary", "qk_norm": "on"},
    {"mlp": "relu2", "position": "none", "block": "postnorm", "head": "untied"},
    {"norm": "rmsnorm", "mlp": "relu2", "block": "parallel", "position": "rotary"},
]


@pytest.mark.parametrize("choices", CASES, ids=lambda c: "+".join(f"{k}={v}" for k, v in c.items()))
def test_every_alternative_builds_runs_and_trains(program: Program, choices: dict[str, str],
                                                  tmp_path: Path) -> None:
    module = variant_module(program, choices, tmp_path)
    before, after = train_a_few_steps(module)
    assert before > 4.5  # about ln(256): an untrained model guesses
    assert after < before - 0.5


def test_attention_stays_causal_with_every_position_and_layout(program: Program,
                                                                tmp_path: Path) -> None:
    for position, block in itertools.product(STRUCTURAL["position"], STRUCTURAL["block"]):
        module = variant_module(program, {"position": position, "block": block,
                                          "qk_norm": "on"}, tmp_path)
        torch.manual_seed(0)
        model = module.GPT(module.GPTConfig(**SMALL)).eval()
        idx = torch.randint(0, 256, (1, 12))
        changed = idx.clone()
        changed[0, 8:] = (changed[0, 8:] + 1) % 256
        with torch.no_grad():
            assert torch.allclose(model(idx)[0, :8], model(changed)[0, :8], atol=1e-5)


def test_positions_break_the_symmetry_of_attention_and_none_does_not(
        program: Program, tmp_path: Path) -> None:
    """Without positions, the last output depends only on which bytes came before, not on
    their order (causal attention averages a set); learned and rotary positions see order."""
    swapped = {}
    for position in STRUCTURAL["position"]:
        module = variant_module(program, {"position": position}, tmp_path)
        torch.manual_seed(0)
        model = module.GPT(module.GPTConfig(**SMALL)).eval()
        torch.nn.init.normal_(model.blocks[0].attn.qkv.weight, std=0.5)  # sharp attention
        with torch.no_grad():
            a = model(torch.tensor([[66, 67, 68, 65]]))[0, -1]
            b = model(torch.tensor([[68, 66, 67, 65]]))[0, -1]
        swapped[position] = float((a - b).abs().max())
    assert swapped["none"] < 1e-5
    assert swapped["learned"] > 1e-3 and swapped["rotary"] > 1e-3, swapped


def test_parameter_counts_stay_comparable(program: Program, tmp_path: Path) -> None:
    n, vocab, block, n_layer = SMALL["n_embd"], 256, SMALL["block_size"], SMALL["n_layer"]
    seed = count(variant_module(program, {}, tmp_path))
    counts = {(site, name): count(variant_module(program, {site: name}, tmp_path))
              for site, names in STRUCTURAL.items() for name in names[1:]}
    norms = 2 * n_layer + 1
    assert counts["norm", "rmsnorm"] == seed - norms * n  # no bias
    assert 0.99 * seed < counts["mlp", "swiglu"] <= seed  # the 2/3 width rule
    assert counts["mlp", "relu2"] == seed
    assert counts["position", "rotary"] == counts["position", "none"] == seed - block * n
    assert counts["head", "untied"] == seed + vocab * n
    for name in ("postnorm", "parallel"):
        assert counts["block", name] == seed
    assert counts["qk_norm", "on"] == seed


def test_swiglu_never_has_more_parameters_than_the_plain_mlp(program: Program,
                                                             tmp_path: Path) -> None:
    plain = variant_module(program, {}, tmp_path)
    swiglu = variant_module(program, {"mlp": "swiglu"}, tmp_path)
    for n_embd, bias in itertools.product((32, 96, 128, 224, 256), (True, False)):
        sizes = []
        for module in (plain, swiglu):
            mlp = module.MLP(module.GPTConfig(n_embd=n_embd, bias=bias))
            sizes.append(sum(p.numel() for p in mlp.parameters()))
        assert 0.97 * sizes[0] < sizes[1] <= sizes[0], (n_embd, bias, sizes)


def test_activation_is_searched_only_with_the_plain_mlp(program: Program) -> None:
    activation = next(s for s in program.grammar.sites if s.name == "activation")
    assert program.grammar.active(activation, program.values)
    swiglu = program.apply({"mlp": "swiglu"}).variant
    assert swiglu is not None
    assert not program.grammar.active(activation, swiglu.values)
    # an edit of the activation under SwiGLU is refused: it would change nothing computed
    after = parse_program(swiglu.source, program.grammar).apply({"activation": "relu"})
    assert not after.ok
