"""docs/api.md is what docs/make_api.py writes from the current docstrings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_api_reference_is_current() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "make_api.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    for name in ("deepphoenix.search(", "deepphoenix.load(", "Study.trials_dataframe(",
                 "Study.resume(", "budget_shape("):
        assert name in text
