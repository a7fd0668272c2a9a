"""`infer` plus random edits over every configuration_*.py of the installed transformers:
no crash, only literal spans change, the output re-parses."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from deepphoenix.errors import SiteError
from deepphoenix.mutator import Program, infer_grammar, parse_module, parse_program
from deepphoenix.proposers import Refiner

transformers = pytest.importorskip("transformers")
CONFIGS = sorted(Path(transformers.__file__).parent.glob("models/*/configuration_*.py"))


def test_there_are_configs_to_sweep() -> None:
    assert len(CONFIGS) > 100


# The first quarter of transformers' configs in the default run, the rest with -m slow.
@pytest.mark.parametrize("chunk", [0, *(pytest.param(c, marks=pytest.mark.slow)
                                        for c in range(1, 4))])
def test_infer_and_edit_every_config(chunk: int) -> None:
    rng = random.Random(chunk)
    proposer = Refiner(max_edits=3)
    checked = 0
    for path in CONFIGS[chunk::4]:
        text = path.read_text(encoding="utf-8")
        module = parse_module(text, str(path))
        grammar = infer_grammar(text, str(path), module=module)
        try:
            program = Program(text, grammar, path=str(path), module=module)
        except SiteError as exc:
            assert "finds no sites" in str(exc), f"{path}: {exc}"
            continue
        assert program.present == set(grammar.names), path
        for _ in range(3):
            edits = proposer.draw_edits(program, rng)
            if not edits:
                continue
            result = program.apply(edits)
            assert result.variant is not None, (path, result)
            source = result.variant.source
            # Outside the edited literals the text is byte for byte the same.
            cursor_a = cursor_b = 0
            changed = {e.site for e in result.variant.changes}
            again = parse_program(source, grammar, str(path))  # re-parses, same sites
            for site in program.sites:
                fixed = text[cursor_a:site.start]
                assert source[cursor_b:cursor_b + len(fixed)] == fixed, (path, site.name)
                new_site = again.site(site.name)
                assert new_site.start == cursor_b + len(fixed)
                if site.name not in changed:
                    assert new_site.literal == site.literal
                cursor_b = new_site.end
                cursor_a = site.end
            assert source[cursor_b:] == text[cursor_a:]
            checked += 1
    assert checked > 50
