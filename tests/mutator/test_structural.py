"""Structural sites in sources: found by the grammar's rule or a user's annotation, the
alternative recognised whatever the formatting, spliced byte-exactly by lines."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepphoenix.errors import SiteError
from deepphoenix.grammar import parse_grammar, read_grammar_file
from deepphoenix.mutator import (
    Edit,
    TargetFormat,
    canonical_hash,
    diff_programs,
    diff_text,
    format_edit_script,
    ground,
    parse_program,
)
from deepphoenix.outcome import Outcome
from deepphoenix.testing import outside_sites, sources, values, variants

FIXTURES = Path(__file__).parent.parent / "fixtures" / "structural"
GRAMMAR = read_grammar_file(FIXTURES / "toy.toml")
SOURCE = (FIXTURES / "toy.py").read_text()


def _outside(text: str, spans: list[tuple[int, int]]) -> list[str]:
    pieces, cursor = [], 0
    for start, end in sorted(spans):
        pieces.append(text[cursor:start])
        cursor = end
    pieces.append(text[cursor:])
    return pieces


def test_the_file_holds_its_own_alternatives() -> None:
    program = parse_program(SOURCE, GRAMMAR)
    assert program.values == {"width": 32, "mlp": "plain", "block": "prenorm", "qk_norm": "off"}
    block = program.site("block")
    assert block.literal == ("        x = x + self.attn(self.ln_1(x))\n"
                             "        x = x + self.mlp(self.ln_2(x))\n")
    assert block.indent == " " * 8 and block.line == 17
    assert program.site("qk_norm").literal == ""  # absent: a place, no code
    assert program.hash == canonical_hash(SOURCE)


def test_every_combination_parses_compiles_and_keeps_every_other_byte() -> None:
    parent = parse_program(SOURCE, GRAMMAR)
    structural = [s for s in GRAMMAR.sites if s.structural]
    parent_pieces = _outside(SOURCE, [(s.start, s.end) for s in parent.sites])
    seen = set()
    for combo in itertools.product(*(s.domain.choices for s in structural)):
        values = dict(zip((s.name for s in structural), combo, strict=True))
        edits = {k: v for k, v in values.items() if v != parent.values[k]}
        if not edits:
            continue
        mutation = parent.apply(edits)
        assert mutation.ok, mutation.reason
        variant = mutation.variant
        assert variant is not None
        compile(variant.source, "<variant>", "exec")
        assert variant.hash == canonical_hash(variant.source)
        child = parse_program(variant.source, GRAMMAR)
        assert {k: child.values[k] for k in values} == values
        assert _outside(variant.source, [(s.start, s.end) for s in child.sites]) == (
            parent_pieces)
        assert diff_programs(parent, child).edits == variant.changes
        back = child.apply({k: parent.values[k] for k in edits})
        assert back.variant is not None and back.variant.source == SOURCE
        seen.add(variant.hash)
    assert len(seen) == 7


def test_recognition_ignores_formatting_and_comments() -> None:
    text = SOURCE.replace("x = x + self.attn(self.ln_1(x))",
                          "x = x + self.attn( self.ln_1(x) )  # attention")
    assert parse_program(text, GRAMMAR).values["block"] == "prenorm"


def test_other_code_at_a_site_is_ungrounded() -> None:
    parent = parse_program(SOURCE, GRAMMAR)
    text = SOURCE.replace("h = F.gelu(h)", "h = F.silu(h)")
    with pytest.raises(SiteError, match=r"site 'mlp' at the source:8 holds code that is none "
                                        r"of its alternatives \(plain, swiglu\).*closest is "
                                        r"'plain', which differs at its code line 4: the file "
                                        r"has 'h = F.silu\(h\)', the grammar 'h = F.gelu"):
        parse_program(text, GRAMMAR)
    result = ground(parent, text, TargetFormat.SOURCE)
    assert result.outcome is Outcome.UNGROUNDED
    swapped = ground(parent, parent.apply({"block": "parallel"}).variant.source,  # type: ignore[union-attr]
                     TargetFormat.SOURCE)
    assert swapped.ok and swapped.variant is not None
    assert swapped.variant.changes == (Edit("block", "parallel"),)


def test_edit_scripts_name_alternatives() -> None:
    parent = parse_program(SOURCE, GRAMMAR)
    assert format_edit_script(parent, [Edit("mlp", "swiglu")]) == "mlp=swiglu"
    result = ground(parent, "mlp=swiglu; qk_norm='on'", TargetFormat.EDITS)
    assert result.ok and result.variant is not None
    assert "def swish(x):" in result.variant.source
    bad = ground(parent, "mlp=class MLP: pass", TargetFormat.EDITS)
    assert bad.outcome is Outcome.UNPARSEABLE and "alternatives (plain, swiglu)" in bad.reason


def test_a_diff_shows_names_and_the_ungrounded_code() -> None:
    parent = parse_program(SOURCE, GRAMMAR)
    found = diff_text(parent, SOURCE.replace("return q @ k", "return k @ q"))
    assert not found.grounded and "k @ q" in found.ungrounded[0]


ANNOTATED = '''\
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.norm = nn.LayerNorm(n)  # deepphoenix: norm

    def forward(self, x):
        h = self.norm(x)
        # deepphoenix: extra
        return x + h
'''

ANNOTATED_GRAMMAR = '''\
name = "annotated"

[sites.norm]
kind = "expression"
[sites.norm.alternatives]
layer = "nn.LayerNorm(n)"
rms = "nn.RMSNorm(n)"

[sites.extra]
kind = "statement"
[sites.extra.alternatives]
none = ""
twice = "h = self.norm(h)"
'''


def test_annotations_place_sites_in_a_users_own_file() -> None:
    grammar = parse_grammar(ANNOTATED_GRAMMAR)
    program = parse_program(ANNOTATED, grammar)
    assert program.values == {"norm": "layer", "extra": "none"}
    variant = program.apply({"norm": "rms", "extra": "twice"}).variant
    assert variant is not None
    assert "self.norm = nn.RMSNorm(n)  # deepphoenix: norm\n" in variant.source
    assert ("        # deepphoenix: extra\n        h = self.norm(h)\n        return x + h\n"
            in variant.source)
    again = parse_program(variant.source, grammar)
    assert again.values == {"norm": "rms", "extra": "twice"}
    ast.parse(variant.source)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (ANNOTATED.replace("deepphoenix: norm", "deepphoenix: nrom"),
         r"the source:7: the annotation '# deepphoenix: nrom' names no site of grammar "
         r"'annotated'\. Did you mean 'norm'\?"),
        (ANNOTATED.replace("        # deepphoenix: extra\n", "").replace(
            "h = self.norm(x)", "h = self.norm(x)  # deepphoenix: extra"),
         r"'extra' is a statement site; put '# deepphoenix: extra' on its own line"),
        (ANNOTATED.replace("        # deepphoenix: extra\n", ""),
         r"site 'extra' may be absent .* needs a place"),
        (ANNOTATED.replace("nn.LayerNorm(n)  # deepphoenix: norm", "nn.BatchNorm1d(n)"),
         r"site 'norm' of grammar 'annotated' \(expression\): the code of one of its "
         r"alternatives matches nothing in the source"),
        (ANNOTATED.replace("  # deepphoenix: norm", "\n        self.n = nn.LayerNorm(n)"),
         r"site 'norm': its alternatives' code is at 2 places in the source \(lines 7, 8\)"),
        (ANNOTATED.replace("nn.LayerNorm(n)", "nn.BatchNorm1d(n)"),
         r"site 'norm' at the source:7 holds code that is none of its alternatives"),
        (ANNOTATED + "    # deepphoenix: norm\n",
         r"the annotation '# deepphoenix: norm' is not before a statement"),
    ],
)
def test_bad_annotations_are_one_line_site_errors(text: str, message: str) -> None:
    with pytest.raises(SiteError, match=message) as caught:
        parse_program(text, parse_grammar(ANNOTATED_GRAMMAR))
    assert "\n" not in str(caught.value)


def test_an_expression_site_without_a_selector_is_found_by_its_code() -> None:
    grammar = parse_grammar(ANNOTATED_GRAMMAR.replace("[sites.norm]\n",
                                                      "[sites.norm]\nwithin = 'Block'\n"))
    text = ANNOTATED.replace("  # deepphoenix: norm", "")
    program = parse_program(text, grammar)
    assert program.site("norm").value == "layer" and program.site("norm").line == 7
    variant = program.apply({"norm": "rms"}).variant
    assert variant is not None
    assert variant.source == text.replace("nn.LayerNorm(n)", "nn.RMSNorm(n)")
    assert parse_program(variant.source, grammar).values["norm"] == "rms"


def test_overlapping_sites_are_refused() -> None:
    grammar = parse_grammar(
        (FIXTURES / "toy.toml").read_text()
        + '\n[sites.act]\nkind = "expression"\nselect = "name:h#2 in MLP.forward"\n'
        '[sites.act.alternatives]\ngelu = "F.gelu(h)"\nrelu = "F.relu(h)"\n')
    with pytest.raises(SiteError, match=r"sites 'mlp' \(line 8\) and 'act' \(line 11\) overlap"):
        parse_program(SOURCE, grammar)


def test_a_definition_alternative_needs_its_helpers() -> None:
    text = (FIXTURES / "toy.toml").read_text().replace(
        "def swish(x):\n    return x * F.sigmoid(x)\n", "")
    grammar = parse_grammar(text)
    with pytest.raises(SiteError, match=r"alternative 'swiglu' uses 'swish', which neither "
                                        r"the alternative nor the source defines or imports"):
        parse_program(SOURCE, grammar)


def test_ambiguous_and_missing_places_are_site_errors() -> None:
    text = (FIXTURES / "toy.toml").read_text().replace('within = "Block.forward"\n', "")
    doubled = SOURCE + "\n\ndef twin(self, x):\n    x = x + self.attn(self.ln_1(x))\n" \
        "    x = x + self.mlp(self.ln_2(x))\n"
    with pytest.raises(SiteError, match=r"site 'block' matches 2 places .* \(lines 17, 27\)"):
        parse_program(doubled, parse_grammar(text))
    with pytest.raises(SiteError, match=r"site 'qk_norm' .*after = 'q, k = self\.split\(q, k\)'"
                                        r" within 'Block\.attend' matches nothing"):
        parse_program(SOURCE.replace("q, k = self.split(q, k)", "q, k = q, k"), GRAMMAR)


@given(st.data())
@settings(max_examples=15)
def test_every_structural_variant_parses_compiles_and_differs_only_in_its_sites(
        data: st.DataObject) -> None:
    for text, grammar in ((SOURCE, GRAMMAR), (ANNOTATED, parse_grammar(ANNOTATED_GRAMMAR))):
        parent = parse_program(text, grammar)
        variant = data.draw(variants(parent))
        compile(variant.source, "<variant>", "exec")
        child = parse_program(variant.source, grammar)
        assert outside_sites(child) == outside_sites(parent)
        assert child.hash == variant.hash == canonical_hash(variant.source)
        assert diff_programs(parent, child).edits == variant.changes


@given(st.data())
@settings(max_examples=8)
def test_reformatted_sources_keep_their_alternatives(data: st.DataObject) -> None:
    text = data.draw(sources(GRAMMAR, template=SOURCE))
    program = parse_program(text, GRAMMAR)
    assert program.values["block"] in ("prenorm", "parallel")


@given(st.data())
@settings(max_examples=8)
def test_names_that_are_no_alternative_are_out_of_domain(data: st.DataObject) -> None:
    parent = parse_program(SOURCE, GRAMMAR)
    name = data.draw(values(GRAMMAR.site("mlp"), in_domain=False))
    mutation = parent.apply({"mlp": name})
    if name in ("plain", "swiglu"):
        assert mutation.outcome in (Outcome.OK, Outcome.NO_OP)
    else:
        assert mutation.outcome is Outcome.OUT_OF_DOMAIN


NANOGPT = (Path(__file__).parent.parent / "grammar" / "files" / "nanogpt_model.py").read_text()



def test_an_unmodified_nanogpt_model_file() -> None:
    grammar = read_grammar_file(FIXTURES / "nanogpt_parts.toml")
    parent = parse_program(NANOGPT, grammar)
    assert parent.values == {"gen": "sample", "act": "gelu", "qk": "off"}
    decorator = NANOGPT.splitlines().index("    @torch.no_grad()") + 1
    assert parent.site("gen").line == decorator  # the decorator's line starts the definition
    mutation = parent.apply({"gen": "greedy", "act": "silu", "qk": "on"})
    assert mutation.ok and mutation.variant is not None
    source = mutation.variant.source
    compile(source, "<variant>", "exec")
    assert "    @torch.no_grad()\n    def generate(" in source
    assert '        """Greedy decoding."""\n' in source
    assert "self.gelu = nn.SiLU()" in source
    assert "split(self.n_embd, dim=2)\n        q, k = F.normalize(q, dim=-1)" in source
    child = parse_program(source, grammar)
    assert outside_sites(child) == outside_sites(parent)
    assert child.apply(parent.values).variant.source == NANOGPT  # type: ignore[union-attr]


def test_a_derived_structural_site_follows_the_choice_it_depends_on() -> None:
    text = (FIXTURES / "toy.toml").read_text().replace(
        'after = "q, k = self.split(q, k)"',
        'after = "q, k = self.split(q, k)"\nderive = \'"on" if mlp == "swiglu" else "off"\'')
    parent = parse_program(SOURCE, parse_grammar(text))
    mutation = parent.apply({"mlp": "swiglu"})
    assert mutation.ok and mutation.variant is not None
    assert mutation.variant.changes == (Edit("mlp", "swiglu"), Edit("qk_norm", "on"))
    assert "q, k = self.q_norm(q), self.k_norm(k)" in mutation.variant.source
    assert ground(parent, "qk_norm=on", TargetFormat.EDITS).outcome is Outcome.INVARIANT
