"""The built-in `resnet` grammar on a CIFAR-style ResNet written for the project: it reads
the stem, the stages and the model line (not the positional helpers), keeps the coupled
literals coupled, and every variant it draws builds, keeps the picture's size through the
stem, and classifies."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from deepphoenix.errors import EditError
from deepphoenix.grammar import load_grammar
from deepphoenix.mutator import Program, parse_program
from deepphoenix.proposers import Refiner

FILE = Path(__file__).parent / "files" / "resnet_cifar_style.py"
RESNET = load_grammar("resnet")


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models: one thread is fastest, and on a shared machine by far."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _program() -> Program:
    return parse_program(FILE.read_text(encoding="utf-8"), RESNET, FILE.name)


def _build(source: str) -> torch.nn.Module:
    namespace: dict[str, object] = {"__name__": "resnet_variant"}
    exec(compile(source, "resnet_variant.py", "exec"), namespace)  # the project's own file
    model = namespace["model"]
    assert isinstance(model, torch.nn.Module)
    return model


def test_reads_the_stem_the_stages_and_the_model_line() -> None:
    program = _program()
    assert program.values == {
        "stem": 16, "stem_conv": 16, "stem_norm": 16, "stem_kernel": 3, "stem_padding": 1,
        "width1": 16, "width2": 32, "width3": 64, "width4": 128, "block": "BasicBlock",
        "blocks1": 1, "blocks2": 1, "blocks3": 1, "blocks4": 1,
    }
    # the model line, not resnet10()'s or resnet26_bottleneck()'s positional arguments
    model_line = program.text[:program.text.index("model = ResNet(")].count("\n") + 1
    assert {s.line for s in program.sites if s.name.startswith("block")} == {model_line}
    assert RESNET.check(program.values, program.present).ok
    assert "width4" not in {s.name for s in program.proposable}


def test_the_last_stage_is_read_only() -> None:
    program = _program()
    with pytest.raises(EditError, match="fixed"):
        program.apply({"width4": 256})
    assert program.apply({"width3": 128}).ok  # the others may reach it: any width builds


def test_the_stem_follows_its_width_and_kernel() -> None:
    mutation = _program().apply({"stem": 24, "stem_kernel": 7})
    assert mutation.ok and mutation.variant is not None
    source = mutation.variant.source
    assert "self.in_planes = 24\n" in source
    assert "nn.Conv2d(3, 24, kernel_size=7, stride=1, padding=3, bias=False)" in source
    assert "nn.BatchNorm2d(24)" in source


@torch.no_grad()
def test_every_drawn_variant_builds_keeps_the_size_and_classifies() -> None:
    program = _program()
    rng = random.Random(7)
    pictures = torch.randn(1, 3, 32, 32)
    changed: set[str] = set()
    for _ in range(30):
        mutation = Refiner(3).refine(program, rng)
        assert mutation.ok and mutation.variant is not None, mutation.reason
        values = dict(mutation.variant.values)
        assert values["width4"] == 128
        changed |= {edit.site for edit in mutation.variant.changes}
        model = _build(mutation.variant.source).eval()
        assert model.conv1(pictures).shape[-2:] == pictures.shape[-2:]
        assert model(pictures).shape == (1, 10)
    # every proposable site moved at least once, derived ones with them
    assert {s.name for s in program.proposable} | {"stem_conv", "stem_norm"} <= changed
