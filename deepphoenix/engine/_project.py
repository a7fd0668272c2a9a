"""A run over a project: which folder a candidate's workspace is made from, which of its
files the candidate is, and what is wrong with them, found before anything runs.

A run uses a project when its objective is a command (``cmd:…``), when ``--with`` names
more files, or when ``--project`` names a folder (default: the folder of ``--source``).
Every file of the candidate lies inside the project and is named by its path there; the
run directory lies outside it (a workspace is a copy of the project, and must never hold
the run's database); ``.git`` is never copied.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from deepphoenix.engine._config import RunConfig
from deepphoenix.errors import ConfigError
from deepphoenix.evaluator import WORKSPACE_SKIPPED as SKIPPED
from deepphoenix.mutator import read_source
from deepphoenix.objectives import check_command, is_command
from deepphoenix.seeds import seed_names

__all__ = ["MAX_PROJECT_FILES", "Project", "project_folder", "read_project"]

MAX_PROJECT_FILES = 20_000  # more is not a project but a home folder: name a smaller one


@dataclass(frozen=True, slots=True)
class Project:
    """The project folder and the candidate's files in it (path there, text), source first."""

    root: Path
    files: tuple[tuple[str, str], ...]

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(path for path, _ in self.files)


def project_folder(config: RunConfig) -> Path | None:
    """The project a run's candidates are evaluated in, as an absolute path (None: the
    run uses none). It is not checked here (`read_project` does)."""
    if not config.uses_project():
        return None
    if config.project:
        return Path(config.project).expanduser().resolve()
    return Path(config.seed_source).expanduser().resolve().parent


def read_project(config: RunConfig, run_dir: Path, seed_text: str | None) -> Project | None:
    """The run's project and the candidate's files, read; `ConfigError` (one line) for a
    source that is no file, a file outside the project, a project that holds the run
    directory or too many files, or a command that is not found."""
    root = project_folder(config)
    if root is None:
        return None
    if seed_text is not None or config.seed_source in seed_names():
        raise ConfigError(f"a run over a project (a command objective, --with or --project) "
                          f"reads its source from a file in the project; "
                          f"{config.seed_source!r} is not a file")
    if not root.is_dir():
        raise ConfigError(f"--project {root}: no such folder")
    run_dir = Path(run_dir).resolve()
    if _inside(run_dir, root):
        raise ConfigError(f"the run directory {run_dir} is inside the project {root}: every "
                          "candidate's workspace is a copy of the project and must not hold "
                          "the run; choose a --run-dir outside it")
    files: list[tuple[str, str]] = []
    for given in (config.seed_source, *config.with_sources):
        where = Path(given).expanduser().resolve()
        if not _inside(where, root) or where == root:
            raise ConfigError(f"{given} is not inside the project {root}; pass --project a "
                              "folder that holds every file of the candidate")
        rel = where.relative_to(root).as_posix()
        if any(part in SKIPPED for part in Path(rel).parts):
            raise ConfigError(f"{given} lies in a folder a workspace never holds "
                              f"({', '.join(sorted(SKIPPED))})")
        if rel in dict(files):
            raise ConfigError(f"{given} is named twice; name each file of the candidate once")
        files.append((rel, read_source(where)))
    _count_files(root)
    if is_command(config.objective):
        check_command(config.objective, root)
    return Project(root, tuple(files))


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _count_files(root: Path) -> None:
    count = 0
    for _folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIPPED]
        count += len(names)
        if count > MAX_PROJECT_FILES:
            raise ConfigError(f"the project {root} holds more than {MAX_PROJECT_FILES:,} "
                              "files, each copied or linked into every candidate's "
                              "workspace; pass --project the folder your command needs")
