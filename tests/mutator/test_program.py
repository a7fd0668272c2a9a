from __future__ import annotations

import pytest

from deepphoenix.errors import EditError, ParseError, SiteError
from deepphoenix.grammar import load_grammar, parse_grammar
from deepphoenix.mutator import Edit, canonical_hash, parse_program
from deepphoenix.outcome import Outcome
from deepphoenix.seeds import seed_source

T5 = load_grammar("t5")
PAPER = seed_source("paper")

FORMS = parse_grammar("""
[sites.d_ff]
select = "attribute:config.d_ff"
kind = "int"
min = 1
max = 100000
[sites.d_model]
select = "keyword:T5Config.d_model"
kind = "int"
min = 1
max = 4096
[sites.n_layer]
select = "field:GPTConfig.n_layer"
kind = "int"
min = 1
max = 48
[sites.heads]
select = "parameter:__init__.heads"
kind = "int"
min = 1
max = 64
[sites.lr]
select = "name:lr"
kind = "log-float"
min = 1e-6
max = 1.0
[sites.act]
select = "keyword:*.act"
kind = "categorical"
choices = ["relu", "gelu"]
[sites.norm]
select = "attribute:*.norm"
kind = "categorical"
dotted = true
choices = ["nn.LayerNorm", "nn.RMSNorm"]
[sites.bias]
select = "name:bias"
kind = "bool"
""")

FORMS_SOURCE = '''\
import torch.nn as nn
config.d_ff = 1_024  # wide
cfg = transformers.T5Config(d_model=(512), act="relu")
lr = 3e-4


class GPTConfig:
    n_layer: int = 12
    bias = False


class Block:
    def __init__(self, heads=8):
        self.norm = nn.LayerNorm
bias = True
'''


def test_finds_every_selector_form() -> None:
    program = parse_program(FORMS_SOURCE, FORMS)
    found = {s.name: (s.value, s.line) for s in program.sites}
    assert found == {
        "d_ff": (1024, 2), "d_model": (512, 3), "act": ("relu", 3), "lr": (3e-4, 4),
        "n_layer": (12, 8), "heads": (8, 13), "norm": ("nn.LayerNorm", 14), "bias": (True, 15),
    }
    # A class-body assignment is a field, not a name: `bias = False` is not the `bias` site.


def test_edits_change_only_the_literals_and_keep_formatting() -> None:
    program = parse_program(FORMS_SOURCE, FORMS)
    result = program.apply({"d_ff": 2048, "d_model": 256, "n_layer": 6, "heads": 4,
                            "lr": 1e-3, "act": "gelu", "norm": "nn.RMSNorm", "bias": False})
    assert result.ok, result.reason
    assert result.variant is not None
    assert result.variant.source == (
        FORMS_SOURCE.replace("1_024", "2048").replace("(512)", "(256)")
        .replace('"relu"', '"gelu"').replace("3e-4", "0.001").replace("= 12", "= 6")
        .replace("heads=8", "heads=4").replace("nn.LayerNorm", "nn.RMSNorm")
        .replace("bias = True", "bias = False")
    )


def test_unchanged_literals_keep_their_spelling() -> None:
    program = parse_program(FORMS_SOURCE, FORMS)
    result = program.apply({"heads": 4})
    assert result.variant is not None
    assert "1_024" in result.variant.source and "(512)" in result.variant.source


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_line_endings_tabs_unicode_and_form_feeds(newline: str) -> None:
    text = newline.join([
        "# café ☕", "if True:", "\tconfig.d_ff = 8", "\x0cname = 'é'", "lr = 0.5", "",
    ])
    grammar = parse_grammar("""
[sites.d_ff]
select = "attribute:config.d_ff"
kind = "int"
min = 1
max = 100
[sites.lr]
select = "name:lr"
kind = "float"
min = 0.0
max = 1.0
""")
    program = parse_program(text, grammar)
    assert [(s.name, s.line) for s in program.sites] == [("d_ff", 3), ("lr", 5)]
    result = program.apply({"d_ff": 9, "lr": 0.25})
    assert result.variant is not None
    assert result.variant.source == text.replace("= 8", "= 9").replace("0.5", "0.25")


def test_paper_seed_has_five_t5_sites_and_default_d_model() -> None:
    program = parse_program(PAPER, T5)
    assert [s.name for s in program.sites] == [
        "num_layers", "num_decoder_layers", "d_ff", "num_heads", "d_kv"]
    assert program.values["d_model"] == 512
    assert program.present == {"num_layers", "num_decoder_layers", "d_ff", "num_heads", "d_kv"}


def test_derived_sites_are_recomputed() -> None:
    program = parse_program(PAPER, T5)
    result = program.apply([Edit("num_heads", 7)])
    assert result.ok and result.variant is not None
    assert "config.num_heads = 7\nconfig.d_kv = 73\n" in result.variant.source
    assert [str(e) for e in result.variant.changes] == ["num_heads=7", "d_kv=73"]


@pytest.mark.parametrize(
    ("edits", "outcome", "reason"),
    [
        ({"num_layers": 9}, Outcome.OUT_OF_DOMAIN, "num_layers=9 is outside 1..8"),
        ({"d_ff": 63}, Outcome.OUT_OF_DOMAIN, "d_ff=63"),
        ({"num_layers": 2}, Outcome.NO_OP, "change no site"),
    ],
)
def test_rejections_are_typed(edits: dict, outcome: Outcome, reason: str) -> None:
    result = parse_program(PAPER, T5).apply(edits)
    assert result.outcome is outcome and reason in result.reason


def test_invariant_outcome_names_the_invariant_and_values() -> None:
    text = "config.d_model = 8\nconfig.num_heads = 8\nconfig.d_kv = 1\n"
    result = parse_program(text, T5).apply({"num_heads": 9})
    assert result.outcome is Outcome.INVARIANT
    assert result.reason == "d_kv >= 1 broken: d_kv=0"


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        ({"d_kv": 32}, "derived"),
        ({"d_model": 256}, "fixed"),
        ({"num_head": 3}, "Did you mean 'num_heads'"),
        ({"num_heads": "3"}, r"Expected int for site 'num_heads' but got '3' \(type=str\)"),
        ({"num_heads": True}, "type=bool"),
    ],
)
def test_bad_edits_raise_edit_error(edits: dict, message: str) -> None:
    with pytest.raises(EditError, match=message):
        parse_program(PAPER, T5).apply(edits)


def test_edit_at_a_site_absent_from_the_source() -> None:
    program = parse_program("config.d_ff = 128\n", T5)
    with pytest.raises(EditError, match="not in"):
        program.apply({"num_heads": 4})


def test_parse_error_has_file_line_and_column() -> None:
    with pytest.raises(ParseError, match=r"^s\.py:2:5: syntax error"):
        parse_program("x = 1\ny = (\n", T5, path="s.py")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x = 1\n", "finds no sites"),
        ("config.d_ff = 1\nother.d_ff = 2\n", r"matches 2 places.*line 1.*line 2"),
        ("config.d_ff = 'wide'\n", "not a literal of kind int"),
    ],
)
def test_site_errors(text: str, message: str) -> None:
    with pytest.raises(SiteError, match=message):
        parse_program(text, T5)


def test_required_site_without_default() -> None:
    grammar = parse_grammar("[sites.a]\nkind='int'\n[sites.b]\nkind='int'\n")
    with pytest.raises(SiteError, match=r"'b'.*matches no literal.*default or optional"):
        parse_program("a = 1\n", grammar)


def test_index_selects_the_kth_binding() -> None:
    grammar = parse_grammar("[sites.second]\nselect='name:x#2'\nkind='int'\nmin=0\nmax=9\n")
    program = parse_program("x = 1\nx = 2\nx = 3\n", grammar)
    assert [(s.value, s.line) for s in program.sites] == [(2, 2)]


def test_non_literal_bindings_are_not_sites() -> None:
    text = PAPER.replace("config.d_kv = 64", "config.d_kv = config.d_model // config.num_heads")
    program = parse_program(text, T5)
    assert "d_kv" not in program.present
    result = program.apply({"num_heads": 7})
    assert result.ok and result.variant is not None
    assert "config.d_kv = config.d_model // config.num_heads" in result.variant.source


def test_canonical_hash_ignores_formatting() -> None:
    program = parse_program(PAPER, T5)
    noisy = "# header\n" + PAPER.replace(" = ", "  =  ").replace("1024", "(1024)  # width")
    assert canonical_hash(noisy) == program.hash == canonical_hash(PAPER)
    assert canonical_hash(PAPER.replace("1024", "1025")) != program.hash


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_floats_are_rejected_before_they_reach_the_source(value: float) -> None:
    # Found by hypothesis: `float('inf')` written as a call is no literal, so the edited
    # variant lost its site and could not be parsed back.
    grammar = parse_grammar("[sites.a]\nselect = 'attribute:*.s_a'\nkind = 'float'\n"
                            "min = 0.0\nmax = 1.0\n")
    program = parse_program("config.s_a = 0.0  # note\n", grammar)
    result = program.apply([Edit("a", value)])
    assert result.outcome is Outcome.OUT_OF_DOMAIN and result.variant is None
    assert "not a finite number" in result.reason
