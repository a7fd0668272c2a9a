"""Model text is untrusted: grounding reduces it to edits at sites or rejects it, and never
runs any of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepphoenix.grammar import load_grammar
from deepphoenix.mutator import TargetFormat, format_edit_script, ground, parse_program
from deepphoenix.outcome import Outcome
from deepphoenix.seeds import seed_source

T5 = load_grammar("t5")
PAPER = seed_source("paper")
PARENT = parse_program(PAPER, T5)


def _sentinel_code(path: Path) -> str:
    return f"open({str(path)!r}, 'w').write('ran')"


@pytest.mark.parametrize(
    ("make_text", "outcome", "reason"),
    [
        (lambda s: "import os\n" + PAPER, Outcome.UNGROUNDED, "added `import os`"),
        (lambda s: PAPER + _sentinel_code(s) + "\n", Outcome.UNGROUNDED, "added `open("),
        (lambda s: PAPER.replace("T5ForConditionalGeneration", "T5Model"), Outcome.UNGROUNDED,
         "changed `model = transformers.T5ForConditionalGeneration(config)`"),
        (lambda s: PAPER.replace("1024", "__import__('os').getpid()"), Outcome.UNGROUNDED,
         "config.d_ff"),
        (lambda s: PAPER + "config.dropout_rate = 0.0\n", Outcome.UNGROUNDED, "added"),
        (lambda s: PAPER.replace("1024", "9" * 5000), Outcome.UNPARSEABLE, "4300 digits"),
        (lambda s: PAPER.replace("1024", "99999999999999999999"), Outcome.OUT_OF_DOMAIN,
         "d_ff=99999999999999999999 is outside 64..4096"),
        (lambda s: PAPER.replace("1024", "10 ** 100000"), Outcome.UNGROUNDED, "10 ** 100000"),
        (lambda s: PAPER.replace("num_layers = 2", "num_layers = 0"), Outcome.OUT_OF_DOMAIN,
         "num_layers=0"),
        (lambda s: PAPER.replace("num_heads = 8", "num_heads = 7"), Outcome.INVARIANT,
         "d_kv == d_model // num_heads broken"),
        (lambda s: PAPER + "config.d_ff = 2\n", Outcome.UNGROUNDED, "matches 2 places"),
        (lambda s: "def (:\n", Outcome.UNPARSEABLE, "1:5"),
        (lambda s: PAPER, Outcome.NO_OP, "change no site"),
        (lambda s: PAPER.replace("1024", "1331"), Outcome.OK, ""),
        (lambda s: PAPER.replace(" = ", "=").replace("1024", "(1331)  # wider"), Outcome.OK, ""),
    ],
)
def test_source_outputs(tmp_path: Path, make_text, outcome: Outcome, reason: str) -> None:  # type: ignore[no-untyped-def]
    sentinel = tmp_path / "ran"
    result = ground(PARENT, make_text(sentinel), TargetFormat.SOURCE)
    assert result.outcome is outcome, result.reason
    assert reason in result.reason
    assert not sentinel.exists()
    if outcome is Outcome.OK:
        assert result.variant is not None
        # The trusted parent's text with the edit, never the model's formatting.
        assert result.variant.source == PAPER.replace("1024", "1331")


@pytest.mark.parametrize(
    ("text", "outcome", "reason"),
    [
        ("d_ff=1331", Outcome.OK, ""),
        ("num_heads=7", Outcome.OK, ""),
        (" num_heads = 7 ;\n", Outcome.OK, ""),
        ("num_heads=7; d_kv=73", Outcome.OK, ""),
        ("num_heads=7; d_kv=64", Outcome.INVARIANT, "d_kv == d_model // num_heads"),
        ("d_ff=__import__('os').system('touch x')", Outcome.UNPARSEABLE, "not an int literal"),
        ("import os", Outcome.UNPARSEABLE, "not site=value"),
        ("d_model=256", Outcome.UNGROUNDED, "not a site of the parent"),
        ("dropout=0.2", Outcome.UNGROUNDED, "not a site of the parent"),
        ("d_ff=1331; d_ff=1332", Outcome.UNPARSEABLE, "twice"),
        ("d_ff=" + "9" * 100, Outcome.UNPARSEABLE, "not an int literal"),
        ("d_ff=5000", Outcome.OUT_OF_DOMAIN, "d_ff=5000"),
        ("d_ff=1.5", Outcome.UNPARSEABLE, "not an int literal"),
        ("", Outcome.NO_OP, "empty"),
        ("d_ff=1024", Outcome.NO_OP, "change no site"),
    ],
)
def test_edit_script_outputs(text: str, outcome: Outcome, reason: str) -> None:
    result = ground(PARENT, text, TargetFormat.EDITS)
    assert result.outcome is outcome, result.reason
    assert reason in result.reason


def test_edit_scripts_round_trip() -> None:
    result = ground(PARENT, "num_heads=7", "edits")
    assert result.variant is not None
    script = format_edit_script(PARENT, result.variant.changes)
    assert script == "num_heads=7; d_kv=73"
    again = ground(PARENT, script, "edits")
    assert again.ok and again.variant is not None and again.variant.hash == result.variant.hash


def test_an_edit_script_grounds_where_a_derivation_lacks_an_optional_input() -> None:
    # nanogpt's min_lr derives from learning_rate, which a model file does not set: the
    # derivation is skipped, not looked up (it raised KeyError on every edits sample).
    model = (Path(__file__).parents[1] / "grammar" / "files" / "nanogpt_model.py").read_text(
        encoding="utf-8")
    parent = parse_program(model, load_grammar("nanogpt"))
    assert "learning_rate" not in parent.values and "min_lr" not in parent.values
    result = ground(parent, "n_layer=10", TargetFormat.EDITS)
    assert result.outcome is Outcome.OK, result.reason
    assert result.variant is not None and result.variant.value("n_layer") == 10
    assert "min_lr" not in dict(result.variant.values)


def test_an_edit_to_an_inactive_conditional_site_is_refused() -> None:
    from deepphoenix.grammar import parse_grammar

    grammar = parse_grammar("[sites.use]\nselect = 'name:use'\nkind = 'bool'\n"
                            "[sites.rate]\nselect = 'name:rate'\nkind = 'float'\nmin = 0.0\n"
                            "max = 0.5\nwhen = 'use'\n")
    parent = parse_program("use = False\nrate = 0.1\n", grammar)
    for fmt, text in (("edits", "rate=0.7"), ("source", "use = False\nrate = 0.7\n")):
        result = ground(parent, text, fmt)  # 0.7: outside a domain no one checks while off
        assert result.outcome is Outcome.INVARIANT and "'rate' is inactive" in result.reason
        assert parent.apply({"rate": 0.7}).reason == result.reason  # as the mutator says
    assert ground(parent, "use=True; rate=0.3", "edits").ok
