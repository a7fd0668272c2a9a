"""A program, grammar and objective that train nothing: the score is a cheap function of
the site values, reported over steps (so rungs correlate with the full score), with an
optional sleep per step. Real workers run them; only the cost of training is missing."""

from __future__ import annotations

from pathlib import Path

PROGRAM = '''\
width = 3
rate = 0.5
'''

GRAMMAR = '''\
name = "synthetic"
[sites.width]
select = "name:width"
kind = "int"
min = 1
max = 40
[sites.rate]
select = "name:rate"
kind = "float"
min = 0.0
max = 1.0
'''

OBJECTIVE = '''\
import time

PAUSE = {pause!r}


def evaluate(program, ctx):
    """Distance to (width 17, rate 0.3), plus a term that shrinks with the steps taken:
    what a learning curve looks like. Honours ctx.should_stop()."""
    target = (program["width"] - 17) ** 2 / 100 + (program["rate"] - 0.3) ** 2
    value = target
    for step in range(1, {steps} + 1):
        value = target + 1.0 / step
        ctx.report(step, value)
        if PAUSE:
            time.sleep(PAUSE)
        if ctx.should_stop():
            break
    return value
'''


def write(folder: Path, steps: int = 9, pause: float = 0.0) -> list[str]:
    """The files in `folder`, and the `deepphoenix run` arguments that use them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prog.py").write_text(PROGRAM)
    (folder / "g.toml").write_text(GRAMMAR)
    (folder / "score.py").write_text(OBJECTIVE.format(steps=steps, pause=pause))
    return ["run", "--source", str(folder / "prog.py"), "--grammar", str(folder / "g.toml"),
            "--objective", f"{folder / 'score.py'}:evaluate", "--proposer", "random",
            "--no-plots"]
