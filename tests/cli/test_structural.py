"""Structural sites from the command line: sites, mutate, diff, check, and one-line errors
for bad grammar text or annotations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.cli.conftest import Invoke

FIXTURES = Path(__file__).parent.parent / "fixtures" / "structural"


def _copy(tmp_path: Path) -> tuple[Path, Path]:
    shutil.copy(FIXTURES / "toy.py", tmp_path / "toy.py")
    shutil.copy(FIXTURES / "toy.toml", tmp_path / "toy.toml")
    return tmp_path / "toy.py", tmp_path / "toy.toml"


def test_sites_shows_alternatives_and_how_each_was_found(invoke: Invoke,
                                                          tmp_path: Path) -> None:
    source, grammar = _copy(tmp_path)
    result = invoke("sites", source, "--grammar", grammar)
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert rows["mlp"].split()[1:4] == ["plain", "8", "definition"]
    assert "one of prenorm, parallel" in rows["block"]
    assert "(after q, k = self.split(q, k))" in rows["qk_norm"]
    data = json.loads(invoke("sites", source, "--grammar", grammar, "--json").stdout)
    block = next(s for s in data["sites"] if s["name"] == "block")
    assert block["value"] == "prenorm" and block["literal"].startswith("        x = x +")


def test_mutate_diff_and_check_a_structural_variant(invoke: Invoke, tmp_path: Path) -> None:
    source, grammar = _copy(tmp_path)
    result = invoke("mutate", source, "--grammar", grammar, "-n", "6", "--seed", "2",
                    "--out", "out")
    assert result.exit_code == 0, result.output
    outputs = sorted((tmp_path / "out").glob("*.py"))
    assert len(outputs) == 6
    structural = []
    for path in outputs:
        shown = invoke("diff", source, path, "--grammar", grammar)
        assert shown.exit_code == 0, shown.output
        assert invoke("check", path, "--grammar", grammar).exit_code == 0
        if "mlp: plain -> swiglu" in shown.stdout:
            assert "+def swish(x):" in shown.stdout and "-        h = F.gelu(h)" in shown.stdout
            structural.append(path)
    swapped = source.read_text().replace("F.gelu(h)", "F.silu(h)")
    (tmp_path / "mine.py").write_text(swapped)
    ungrounded = invoke("diff", source, "mine.py", "--grammar", grammar)
    assert ungrounded.exit_code == 1
    assert "ungrounded: site 'mlp' at mine.py:8 holds code that is none" in ungrounded.stdout


def test_bad_grammar_text_and_annotations_are_one_line_errors(invoke: Invoke,
                                                              tmp_path: Path) -> None:
    source, grammar = _copy(tmp_path)
    broken = grammar.read_text().replace('parallel = "x = x + self.attn', 'parallel = "x = x + (')
    (tmp_path / "broken.toml").write_text(broken)
    result = invoke("sites", source, "--grammar", "broken.toml")
    assert result.exit_code != 0
    assert result.stderr.count("\n") == 1
    assert "broken.toml:" in result.stderr and "alternatives.parallel" in result.stderr
    assert "is not Python statements" in result.stderr
    source.write_text(source.read_text().replace("class Block:", "# deepphoenix: blok\n"
                                                                 "class Block:"))
    result = invoke("mutate", source, "--grammar", grammar)
    assert result.exit_code != 0 and result.stderr.count("\n") == 1
    assert "names no site of grammar 'toy'. Did you mean 'block'?" in result.stderr
    nothing = grammar.read_text().replace('within = "Block.forward"', 'within = "Blok.forward"')
    (tmp_path / "nothing.toml").write_text(nothing)
    (tmp_path / "plain.py").write_text((FIXTURES / "toy.py").read_text())
    result = invoke("check", "plain.py", "--grammar", "nothing.toml")
    assert result.exit_code != 0 and result.stderr.count("\n") == 1
    assert "site 'block' of grammar 'toy' (statement)" in result.stderr
    assert "within 'Blok.forward' matches nothing in plain.py" in result.stderr
