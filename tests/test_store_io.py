"""Atomic writes: the umask decides the mode, and an error names the target."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from deepphoenix.store_io import write_text_atomic


@pytest.fixture
def umask_027() -> Iterator[None]:
    before = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(before)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_mode_follows_the_umask(tmp_path: Path, mask: int) -> None:
    before = os.umask(mask)
    try:
        write_text_atomic(tmp_path / "f.txt", "x")
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o666 & ~mask


def test_replacing_a_file_keeps_text_and_mode(tmp_path: Path, umask_027: None) -> None:
    target = tmp_path / "f.txt"
    write_text_atomic(target, "one")
    write_text_atomic(target, "two")
    assert target.read_text() == "two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_an_unwritable_target_is_named(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    target = tmp_path / "not-a-dir" / "out.json"
    with pytest.raises(OSError) as caught:
        write_text_atomic(target, "x")
    assert caught.value.filename == str(target)
