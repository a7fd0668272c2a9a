"""The old proposer names still work for one release, and say which name replaces them;
deepphoenix itself uses only the new names."""

from __future__ import annotations

import subprocess
import sys

import pytest

import deepphoenix.proposers as proposers


@pytest.mark.parametrize(("old", "new"), [("LearnedProposer", "PaperT5Proposer"),
                                          ("LineageProposer", "HindsightProposer"),
                                          ("T5Proposer", "T5Sampler"),
                                          ("RandomRefiner", "RandomProposer")])
def test_an_old_name_warns_and_names_the_new_one(old: str, new: str) -> None:
    with pytest.warns(DeprecationWarning, match=f"deepphoenix.proposers.{new}"):
        found = getattr(proposers, old)
    assert found is getattr(proposers, new)


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchProposer"):
        proposers.NoSuchProposer  # noqa: B018


def test_importing_every_module_of_deepphoenix_warns_of_no_old_name() -> None:
    code = (
        "import importlib, pkgutil, warnings\n"
        "import deepphoenix\n"
        "warnings.filterwarnings('error', '.*deprecated and goes in the next release',\n"
        "                        DeprecationWarning)\n"
        "skip = ('deepphoenix.executor._ray', 'deepphoenix.seeds.', 'deepphoenix.jobs')\n"
        "for m in pkgutil.walk_packages(deepphoenix.__path__, 'deepphoenix.'):\n"
        "    if not m.name.startswith(skip):\n"
        "        importlib.import_module(m.name)\n"
        "from deepphoenix.proposers import *  # noqa\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
