"""Writing files so that a crash never leaves half of one."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["apply_umask", "current_umask", "write_bytes_atomic", "write_text_atomic",
           "write_tree"]


def current_umask() -> int:
    """The process umask (read by setting it and putting it back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path: Path) -> None:
    """Give `path` the mode an ordinary `open()` would have: 0o666 less the umask.
    `mkstemp` makes files 0o600 whatever the umask, which kept colleagues from reading
    results."""
    os.chmod(path, 0o666 & ~current_umask())


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same directory, then rename over `path`. An
    `OSError` names `path`, never the temporary file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        apply_umask(Path(tmp))
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_tree(folder: Path, files: Iterable[tuple[str, str]]) -> None:
    """Make `folder` hold exactly `files` (relative path, text): written into a staging
    folder beside it, which then replaces it, so a crash leaves the old folder or the
    new one."""
    folder = Path(folder)
    staging = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    for rel, text in files:
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise OSError(f"{rel}: a path outside {folder}")
        write_text_atomic(staging / rel, text)
    staging.mkdir(parents=True, exist_ok=True)
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
