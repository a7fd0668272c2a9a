"""A candidate's workspace: the project with the candidate's files in place, made fresh for
each evaluation inside the worker.

The project folder reaches the worker read-only (a declared input of `EvalJob`: the
confined worker binds it, the Ray executor ships it once per node). Its files are copied
into the workspace, except those over `link_bytes` (data sets, checkpoints), which are
symbolic links to the read-only originals: never copied per candidate. ``.git`` is left
out; the run directory is never inside a project (the run refuses one that holds it).
Then each of the candidate's files is written at its path, replacing the project's.
Nothing here imports torch.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path

__all__ = ["SKIPPED", "build_workspace"]

SKIPPED = frozenset({".git"})  # folders never copied into a workspace


def build_workspace(into: Path, project: str | Path | None, files: Mapping[str, str],
                    link_bytes: int) -> Path:
    """Make `into` afresh: `project` copied (big files linked read-only, ``.git`` left
    out), then `files` written at their paths. `OSError` when it cannot be made."""
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    if project:
        _copy_project(Path(project), into, link_bytes)
    for rel, text in files.items():
        target = into / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise OSError(f"{rel}: a candidate's file must stay inside its workspace")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            target.unlink()  # a linked original is read-only and not the candidate's
        target.write_text(text, encoding="utf-8")
    return into


def _copy_project(project: Path, into: Path, link_bytes: int) -> None:
    root = str(project.resolve())
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED)
        rel = os.path.relpath(folder, root)
        here = into if rel == "." else into / rel
        here.mkdir(exist_ok=True)
        for name in dirs:
            source = os.path.join(folder, name)
            if os.path.islink(source):  # os.walk does not descend into it: keep the link
                os.symlink(_link_target(source, root), here / name)
        for name in names:
            source = os.path.join(folder, name)
            info = os.lstat(source)
            if stat.S_ISLNK(info.st_mode):
                os.symlink(_link_target(source, root), here / name)
            elif stat.S_ISREG(info.st_mode):
                if info.st_size > link_bytes:
                    os.symlink(source, here / name)
                else:
                    shutil.copyfile(source, here / name)
                    os.chmod(here / name, stat.S_IMODE(info.st_mode) | stat.S_IWUSR)


def _link_target(link: str, root: str) -> str:
    """Where a copy of the project's link `link` points: as written when it stays inside
    the project (the copy has the same tree), else the absolute target."""
    target = os.readlink(link)
    absolute = os.path.normpath(os.path.join(os.path.dirname(link), target))
    inside = absolute == root or absolute.startswith(root.rstrip("/") + "/")
    return target if inside and not os.path.isabs(target) else absolute
