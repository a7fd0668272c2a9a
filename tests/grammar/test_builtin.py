"""The built-in nanogpt and llama grammars on files written in the style of their targets
(and on the installed transformers' own Llama config)."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from deepphoenix.grammar import grammar_names, load_grammar
from deepphoenix.mutator import canonical_hash, diff_text, parse_program
from deepphoenix.proposers import Refiner

FILES = Path(__file__).parent / "files"
NANOGPT = load_grammar("nanogpt")
LLAMA = load_grammar("llama")


def test_both_are_registered_next_to_t5() -> None:
    assert {"t5", "nanogpt", "llama"} <= set(grammar_names())


def _rates(grammar_name: str, file: str, n: int = 600) -> dict[str, float]:
    grammar = load_grammar(grammar_name)
    text = (FILES / file).read_text(encoding="utf-8")
    program = parse_program(text, grammar, file)
    assert grammar.check(program.values, program.present).ok
    proposer, rng = Refiner(1), random.Random(2024)
    counts: Counter[str] = Counter()
    for i in range(n):
        mutation = proposer.refine(program, rng)
        assert mutation.ok and mutation.variant is not None, mutation.reason
        assert canonical_hash(mutation.variant.source) == mutation.variant.hash
        if i < 10:
            assert diff_text(program, mutation.variant.source).edits == mutation.variant.changes
        counts.update(e.site for e in mutation.variant.changes)
    proposable = {s.name for s in program.proposable}
    return {name: counts[name] / n for name in proposable}


@pytest.mark.parametrize("file", ["nanogpt_model.py", "nanogpt_config.py"])
def test_nanogpt_heads_and_width_move_as_often_as_the_other_knobs(file: str) -> None:
    # The "done when": single-step variants change n_head and n_embd at rates
    # within a factor of 3 of the other sites (seeded; RESULTS.md reports the numbers).
    rates = _rates("nanogpt", file)
    others = [rate for name, rate in rates.items() if name not in ("n_head", "n_embd")]
    for coupled in ("n_head", "n_embd"):
        assert min(others) / 3 <= rates[coupled] <= max(others) * 3, rates


@pytest.mark.parametrize("file", ["nanogpt_model.py", "nanogpt_train.py", "nanogpt_config.py"])
def test_nanogpt_reads_model_training_script_and_config(file: str) -> None:
    program = parse_program((FILES / file).read_text(encoding="utf-8"), NANOGPT, file)
    assert {"n_layer", "n_head", "n_embd"} <= program.present
    assert NANOGPT.check(program.values, program.present).ok


def test_nanogpt_derived_schedule_follows_the_learning_rate() -> None:
    text = (FILES / "nanogpt_train.py").read_text(encoding="utf-8")
    program = parse_program(text, NANOGPT)
    result = program.apply({"learning_rate": 3e-4, "max_iters": 300000})
    assert result.ok and result.variant is not None
    assert "min_lr = 3e-05\n" in result.variant.source
    assert "lr_decay_iters = 300000\n" in result.variant.source


def test_llama_reads_an_init_style_config() -> None:
    file = "configuration_llama_style.py"
    program = parse_program((FILES / file).read_text(encoding="utf-8"), LLAMA, file)
    assert {"hidden_size", "num_attention_heads", "rope_theta", "hidden_act"} <= program.present
    assert "num_key_value_heads" in program.present  # written None: nullable, unset
    assert "num_key_value_heads" not in program.values
    rng = random.Random(0)
    for _ in range(200):
        result = Refiner(1).refine(program, rng)
        assert result.ok and result.variant is not None
        values = dict(result.variant.values)
        assert values["hidden_size"] % values["num_attention_heads"] == 0  # type: ignore[operator]
        kv = values.get("num_key_value_heads")
        assert kv is None or values["num_attention_heads"] % kv == 0  # type: ignore[operator]


def test_llama_reads_the_installed_transformers_llama_config() -> None:
    transformers = pytest.importorskip("transformers")
    path = Path(transformers.__file__).parent / "models" / "llama" / "configuration_llama.py"
    program = parse_program(path.read_text(encoding="utf-8"), LLAMA, str(path))
    assert {"hidden_size", "num_attention_heads", "num_hidden_layers"} <= program.present
    result = Refiner(2).refine(program, random.Random(1))
    assert result.ok and result.variant is not None
    assert diff_text(program, result.variant.source).grounded
