"""Naming and checking objectives on the parent side (nothing of a user's file runs), and
the trusted checks of what a user objective returns (in this process)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from deepphoenix.errors import ConfigError, UnknownNameError
from deepphoenix.objectives import Direction, ObjectiveSpec, resolve_objective
from deepphoenix.objectives._user import ObjectiveFailure, call_objective, load_objective

GOOD = '''
def evaluate(program, ctx):
    return program["x"] * 2

evaluate.direction = "maximize"

def helper(a):
    return a
'''


def test_directions_compare_strictly() -> None:
    assert Direction.MINIMIZE.better(1.0, 2.0) and not Direction.MINIMIZE.better(2.0, 2.0)
    assert Direction.MAXIMIZE.better(2.0, 1.0) and not Direction.MAXIMIZE.better(1.0, 2.0)
    with pytest.raises(UnknownNameError, match="Unknown direction 'sideways'"):
        Direction.parse("sideways")


def test_built_in_objectives_are_losses() -> None:
    assert resolve_objective("fewshot") == ObjectiveSpec("fewshot")
    assert resolve_objective("val-loss", "minimize").direction is Direction.MINIMIZE
    with pytest.raises(ConfigError, match="is a loss and is minimized"):
        resolve_objective("val-loss", "maximize")
    with pytest.raises(UnknownNameError, match="Did you mean 'fewshot'"):
        resolve_objective("fewshots")


def test_the_built_in_table_says_what_a_rung_counts_and_who_needs_held_out_rows(
        tmp_path: Path) -> None:
    # A quine's rungs are steps it reports, not rows of task data (its pruned candidates
    # said "rows" while the unit was read off "is it a built-in").
    assert resolve_objective("fewshot").unit == "rows"
    assert resolve_objective("val-loss").unit == "rows"
    assert resolve_objective("self-replication").unit == "steps"
    user = tmp_path / "score.py"
    user.write_text("def evaluate(program, ctx):\n    return 1.0\n")
    assert resolve_objective(f"{user}:evaluate").unit == "steps"
    assert [n for n in ("fewshot", "val-loss", "self-replication")
            if resolve_objective(n).uses_heldout] == ["val-loss"]


def test_a_user_objective_is_read_checked_and_stored_as_text(tmp_path: Path) -> None:
    path = tmp_path / "score.py"
    path.write_text(GOOD)
    spec = resolve_objective(f"{path}:evaluate")
    assert spec.direction is Direction.MAXIMIZE  # declared in the file
    assert spec.text == GOOD and spec.function == "evaluate" and not spec.builtin
    assert resolve_objective(f"{path}:evaluate", "minimize").direction is Direction.MINIMIZE
    assert ObjectiveSpec.from_dict(spec.to_dict()) == spec


def test_a_user_objective_from_an_importable_module(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "myobjectives.py").write_text(GOOD)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = resolve_objective("myobjectives:evaluate")
    assert spec.origin == str(tmp_path / "myobjectives.py") and spec.text == GOOD
    assert "myobjectives" not in sys.modules  # found, never imported


@pytest.mark.parametrize(("text", "target", "message"), [
    (None, "missing.py:evaluate", "objective file: .*missing.py"),
    (GOOD, "score.py:evaluat", "has no function 'evaluat' .*Did you mean 'evaluate'"),
    (GOOD, "score.py:helper", r"helper\(a\) has the wrong signature"),
    ("def f(program, ctx, extra):\n    pass\n", "score.py:f", "wrong signature"),
    ("def f(program, ctx):\n    pass\nf.direction = 'up'\n", "score.py:f",
     "Unknown direction 'up'"),
    ("def f(program, ctx:\n", "score.py:f", "syntax error"),
    (GOOD, "no_such_module_here:evaluate", "cannot be found"),
])
def test_bad_objectives_get_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           text: str | None, target: str,
                                           message: str) -> None:
    monkeypatch.chdir(tmp_path)
    if text is not None:
        (tmp_path / "score.py").write_text(text)
    with pytest.raises((ConfigError, UnknownNameError), match=message) as caught:
        resolve_objective(target)
    assert "\n" not in str(caught.value)


def test_what_an_objective_returns_is_checked(tmp_path: Path) -> None:
    cache: dict[str, object] = {}
    function = load_objective(GOOD, "evaluate", "score.py", cache)
    assert load_objective(GOOD, "evaluate", "score.py", cache) is function  # once per worker
    assert call_objective(function, {"x": 2.5}, None) == (5.0, {})  # type: ignore[arg-type]

    def returning(value: object):  # type: ignore[no-untyped-def]
        return lambda program, ctx: value

    assert call_objective(returning({"score": 1, "acc": 0.5, "name": "x"}), {},
                          None) == (1.0, {"acc": 0.5})  # type: ignore[arg-type]
    for value, message in [("0.9", "is a str"), ({"acc": 1.0}, "without a 'score' key"),
                           (math.nan, "non-finite"), ({"score": math.inf}, "non-finite"),
                           (None, "is a NoneType"), (True, "is a bool")]:
        with pytest.raises(ObjectiveFailure, match=message):
            call_objective(returning(value), {}, None)  # type: ignore[arg-type]
