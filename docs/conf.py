"""Sphinx configuration of the documentation site.

    pip install -e ".[docs]"
    sphinx-build -W --keep-going -b html docs docs/_build/html   # what CI runs

Pages are Markdown (MyST); the API reference comes from the docstrings (autodoc, which
imports `deepphoenix` only: no torch). Warnings are errors in CI, broken links and
anchors included.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

project = "deepphoenix"
author = "the deepphoenix developers"
copyright = "2026, the deepphoenix developers"

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
# Docstrings are written with Markdown's `name` for code; in reST that is the default
# role, so make the default role inline code.
default_role = "code"
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence"]
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "undoc-members": False}
html_theme = "furo"
html_title = "deepphoenix"
# Benchmark figures are included from benchmarks/RESULTS.md, which stays where the
# benchmarks are.
# RESULTS.md has tables under "####" headings the benchmark scripts print as they are.
suppress_warnings = ["myst.header"]
