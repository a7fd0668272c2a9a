"""The `nanogpt` grammar's structural sites on a nanoGPT-style model.py (the test copy of
nanoGPT's file, whose site lines read as nanoGPT's do): each alternative renders, and the
variant builds and runs a forward and backward pass; the training script has none."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from deepphoenix.grammar import load_grammar
from deepphoenix.mutator import Program, parse_program

FILES = Path(__file__).parent / "files"
STRUCTURAL = {  # proposable structural site -> alternatives, nanoGPT's own first
    "norm": ("layernorm", "rmsnorm"),
    "mlp": ("gelu", "relu", "relu2", "swiglu"),
    "position": ("learned", "none"),
    "rotary": ("off", "on"),
    "qk_norm": ("off", "on"),
    "head": ("tied", "untied"),
    "block": ("prenorm", "postnorm", "parallel"),
}
DERIVED = {"norm_2": "layernorm", "norm_f": "layernorm", "mlp_in": "plain", "mlp_out": "plain"}
_counter = itertools.count()


@pytest.fixture(scope="module")
def program() -> Program:
    return parse_program((FILES / "nanogpt_model.py").read_text(encoding="utf-8"),
                         load_grammar("nanogpt"))


def build(source: str, tmp_path: Path) -> ModuleType:
    name = f"_deepphoenix_nanogpt_structure_{next(_counter)}"
    path = tmp_path / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # @dataclass looks its module up
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def test_the_file_holds_nanogpts_own_alternatives(program: Program) -> None:
    for site, names in STRUCTURAL.items():
        assert program.values[site] == names[0]
    for site, name in DERIVED.items():
        assert program.values[site] == name
    assert {s.name for s in program.proposable} >= set(STRUCTURAL)
    assert not {s.name for s in program.proposable} & set(DERIVED)


def test_the_training_script_has_no_structural_sites() -> None:
    script = parse_program((FILES / "nanogpt_train.py").read_text(encoding="utf-8"),
                           load_grammar("nanogpt"))
    assert not {s.name for s in script.sites} & (set(STRUCTURAL) | set(DERIVED))


CASES = [{site: name} for site, names in STRUCTURAL.items() for name in names[1:]] + [
    {site: names[-1] for site, names in STRUCTURAL.items()},
    {"norm": "rmsnorm", "mlp": "relu2", "rotary": "on", "position": "none",
     "block": "postnorm", "qk_norm": "on"},
]


@pytest.mark.parametrize("choices", CASES, ids=lambda c: "+".join(f"{k}={v}" for k, v in c.items()))
def test_structural_variants_build_and_run_forward(program: Program, choices: dict[str, str],
                                                   tmp_path: Path) -> None:
    mutation = program.apply(choices)
    assert mutation.ok and mutation.variant is not None, mutation
    variant = mutation.variant
    if choices.get("mlp") == "swiglu":  # the projections follow the activation
        assert variant.value("mlp_in") == variant.value("mlp_out") == "gated"
    if choices.get("norm") == "rmsnorm":
        assert variant.value("norm_2") == variant.value("norm_f") == "rmsnorm"
    module = build(variant.source, tmp_path)
    torch.manual_seed(0)
    model = module.GPT(module.GPTConfig(block_size=32, vocab_size=96, n_layer=2, n_head=2,
                                        n_embd=32))
    idx = torch.randint(0, 96, (2, 16))
    logits, loss = model(idx, idx)
    assert logits.shape == (2, 16, 96) and torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    last, none = model(idx)
    assert last.shape == (2, 1, 96) and none is None
    tied = model.transformer.wte.weight is model.lm_head.weight
    assert tied == (choices.get("head", "tied") == "tied")
