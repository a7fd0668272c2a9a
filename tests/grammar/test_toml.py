from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from deepphoenix.errors import GrammarError, UnknownNameError
from deepphoenix.grammar import (
    BINDING_FORMS,
    Form,
    Kind,
    OperatorKind,
    Selector,
    grammar_names,
    load_grammar,
    parse_grammar,
)
from deepphoenix.outcome import Outcome

GOOD = """\
name = "mine"
description = "test grammar"
invariants = ["a <= b", { expr = "b % 2 == 0", description = "even" }]

[sites.a]
select = "attribute:config.a"
kind = "int"
min = 1
max = 10

[sites.b]
select = ["keyword:Make.b", "name:b"]
kind = "int"
min = 2
max = 1000
mutation = "scale"
scale = [0.1, 0.2]

[sites.act]
kind = "categorical"
choices = ["relu", "gelu"]

[sites.c]
derive = "a * 2"
"""


def test_parses_every_field() -> None:
    g = parse_grammar(GOOD)
    assert g.name == "mine"
    assert g.names == ("a", "b", "act", "c")
    a, b, act, c = g.sites
    assert a.selectors == (Selector(Form.ATTRIBUTE, "a", "config"),)
    assert a.operator.kind is OperatorKind.STEP  # narrow int range defaults to step
    assert b.operator.kind is OperatorKind.SCALE and (b.operator.low, b.operator.high) == (0.1, 0.2)
    assert [str(s) for s in b.selectors] == ["keyword:Make.b", "name:b"]
    assert act.kind is Kind.CATEGORICAL and act.operator.kind is OperatorKind.RESAMPLE
    assert len(act.selectors) == len(BINDING_FORMS)  # no select: every binding form
    assert c.derived and not c.proposable and c.kind is Kind.INT
    assert [i.text for i in g.invariants] == ["a <= b", "b % 2 == 0"]
    assert g.invariants[1].description == "even"


def test_check_reports_domain_derivation_and_invariants() -> None:
    g = parse_grammar(GOOD)
    ok = {"a": 2, "b": 4, "act": "relu", "c": 4}
    assert g.check(ok).ok
    assert g.check({**ok, "a": 11}).outcome is Outcome.OUT_OF_DOMAIN
    assert g.check({**ok, "act": "tanh"}).outcome is Outcome.OUT_OF_DOMAIN
    broken = g.check({**ok, "c": 5})
    assert broken.outcome is Outcome.INVARIANT and "c == a * 2" in broken.reason
    odd = g.check({**ok, "b": 5})
    assert odd.outcome is Outcome.INVARIANT and "b % 2 == 0 broken: b=5" in odd.reason


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = 1\n[sites.a]\nkind='int'\n", r":1: key 'name'"),
        ("bogus = 1\n[sites.a]\nkind='int'\n", r"unknown key 'bogus'"),
        ("[sites.a]\nkind = 'integer'\n", r":2: key 'sites.a.kind': unknown kind"),
        ("[sites.a]\nkind = 'int'\nmin = 5\nmax = 1\n", r":3: key 'sites.a.min'"),
        ("[sites.a]\nkind = 'int'\nmni = 5\n", r":3: .*Did you mean 'min'"),
        ("[sites.a]\nkind = 'int'\nmin = 1.5\nmax = 3\n", r"whole bounds"),
        ("[sites.a]\nkind = 'int'\nmutation = 'jump'\n", r"unknown mutation 'jump'"),
        ("[sites.a]\nkind = 'float'\nmutation = 'step'\nmin=0.0\nmax=1.0\n", r"step applies"),
        ("[sites.a]\nkind = 'int'\nmutation = 'resample'\n", r"resample needs both"),
        ("[sites.a]\nkind = 'int'\nscale = [0.5, 0.1]\n", r"key 'sites.a.scale'"),
        ("[sites.a]\nkind = 'log-float'\nmin = 0.0\nmax = 1.0\n", r"needs min > 0"),
        ("[sites.a]\nkind = 'categorical'\nchoices = ['x']\n", r"two or more choices"),
        ("[sites.a]\nkind = 'int'\nselect = 'attr:a'\n", r"unknown form 'attr'"),
        ("[sites.a]\nkind = 'int'\nselect = 'arg:F.norm[x]'\n", r"3: key.*0-based"),
        ("[sites.a]\nkind = 'int'\nselect = 'item:betas'\n", r"item:OWNER\[KEY\]"),
        ("[sites.a]\nkind = 'int'\nselect = 'name:a in '\n", r"'in' must be followed"),
        ("[sites.a]\nkind = 'int'\ndefault = 'x'\n", r"default 'x' is not a int"),
        ("[sites.a]\nkind = 'int'\nweight = 0\n", r"positive number"),
        ("[sites.a]\nkind = 'int'\nmin = true\n", r"expected int/float but got True"),
        ("[sites.a]\nderive = 'b + 1'\n", r"unknown site 'b'"),
        ("[sites.a]\nderive = 'b'\n[sites.b]\nderive = 'a'\n", r"cycle"),
        ("invariants = ['a >']\n[sites.a]\nkind = 'int'\n", r"key 'invariants'"),
        ("[sites]\n", r"at least one site"),
        ("[sites.a\n", r"invalid TOML"),
        ("[sites.1a]\nkind='int'\n", r"must be a Python identifier"),
    ],
)
def test_invalid_grammars_name_key_and_line(text: str, message: str) -> None:
    with pytest.raises(GrammarError, match=message):
        parse_grammar(text, origin="g.toml")


def test_errors_from_files_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text(textwrap.dedent("""\
        [sites.a]
        kind = "int"

        [sites.b]
        kind = "int"
        min = 9
        max = 2
    """))
    with pytest.raises(GrammarError, match=r"g\.toml:6: key 'sites\.b\.min'"):
        load_grammar(str(path))


def test_builtin_t5_is_the_papers_grammar() -> None:
    assert "t5" in grammar_names()
    g = load_grammar("t5")
    spec = {s.name: s for s in g.sites}
    assert [s.name for s in g.proposable] == ["num_layers", "num_decoder_layers", "d_ff",
                                             "num_heads"]
    for name in ("num_layers", "num_decoder_layers"):
        assert (spec[name].domain.low, spec[name].domain.high) == (1, 8)
        assert spec[name].operator.kind is OperatorKind.STEP and spec[name].operator.k == 1
    assert (spec["d_ff"].domain.low, spec["d_ff"].domain.high) == (64, 4096)
    assert spec["d_ff"].operator.kind is OperatorKind.SCALE
    assert (spec["d_ff"].operator.low, spec["d_ff"].operator.high) == (0.01, 0.5)
    assert (spec["num_heads"].domain.low, spec["num_heads"].domain.high) == (1, 16)
    assert spec["d_kv"].derive is not None and spec["d_kv"].derive.text == "d_model // num_heads"
    assert not spec["d_model"].mutable and spec["d_model"].default == 512


def test_unknown_grammar_name_suggests() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 't5'"):
        load_grammar("t6")


def test_missing_grammar_file(tmp_path: Path) -> None:
    with pytest.raises(GrammarError, match="does not exist"):
        load_grammar(str(tmp_path / "nope.toml"))
