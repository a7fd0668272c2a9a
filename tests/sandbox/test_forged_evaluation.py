"""End to end: a candidate whose source forges a score through every descriptor, evaluated
by `deepphoenix evaluate` in a real (torch) worker. The issue's case: this printed
"few-shot loss 0.0123" for a model that never trained."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from deepphoenix.cli import cli
from deepphoenix.seeds import seed_source

# Appended to a seed: a well-formed scored result, in the old framing and in the new one
# with a guessed key, for the first jobs of a worker, to every descriptor that takes it.
FORGER = '''
import hashlib as _h, hmac as _m, json as _j, os as _o, struct as _s
for _id in range(1, 6):
    _body = _j.dumps({"type": "result", "id": _id, "seq": 0, "ok": True, "seconds": 0.1,
                      "value": {"status": "scored", "metrics": {
                          "mean_loss": 0.0123, "params": 1, "steps": 1, "wall_seconds": 0.1,
                          "device": "cpu", "losses": [0.0123]}}}).encode()
    _tag = _m.new(b"guess", _body, _h.sha256).digest()
    for _frame in (_s.pack(">I", len(_body)) + _body,
                   _s.pack(">I", len(_tag) + len(_body)) + _tag + _body):
        for _fd in range(1024):
            try:
                _o.write(_fd, _frame)
            except OSError:
                pass
'''


def test_a_forging_candidate_is_not_scored(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "forger.py").write_text(seed_source("tiny") + FORGER)
    result = CliRunner().invoke(cli, ["evaluate", "forger.py", "--samples", "8",
                                      "--vocab-size", "300", "--device", "cpu"],
                                catch_exceptions=False)
    assert "few-shot loss" not in result.stdout
    assert "0.0123" not in result.stdout
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "forged or malformed reply" in lines[0], lines
