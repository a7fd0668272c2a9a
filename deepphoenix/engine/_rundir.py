"""A run directory: creating one, or opening one to resume, under an exclusive lock.

Everything a resume needs is inside the directory, written before anything runs: the
resolved config, the seed text (a bundle's text for a candidate of several files), the TOML
text of a grammar given as a file, the objective (with a user objective's text), a
constraint's text, the text of a separate proposer source, and a project run's folder and
file paths. So a resume from another working directory, or after editing any of those
files, is the same run (a project's other files are read from the project when a candidate
runs).
Everything that can be wrong with the input is found before anything is written: a bad
grammar, seed or objective leaves no run directory behind.
"""

from __future__ import annotations

import json
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from deepphoenix.engine._builtin_init import resolve_init
from deepphoenix.engine._config import RunConfig
from deepphoenix.engine._project import read_project
from deepphoenix.engine._seeding import derive_seed
from deepphoenix.errors import ConfigError, RunDirError
from deepphoenix.evaluator import ConstraintSpec, resolve_constraint
from deepphoenix.grammar import Grammar, grammar_file, parse_grammar, read_grammar_text
from deepphoenix.mutator import (
    Bundle,
    Program,
    bundle_text,
    parse_candidate,
    read_source,
    resolve_grammar,
)
from deepphoenix.objectives import ObjectiveSpec, resolve_objective
from deepphoenix.proposers import model_format, model_view
from deepphoenix.run_lock import RunLock
from deepphoenix.seeds import CODET5_DIR, seed_names, seed_source
from deepphoenix.store import DB_NAME, RunStore
from deepphoenix.store_io import write_text_atomic

__all__ = ["INIT_DIR", "RunDir", "derive_seed", "load_seed_text"]

INIT_DIR = "proposer-init"  # in data/: the run's own copy of the --proposer-init model

# RunConfig fields added after runs were first written, with the behaviour before them.
_LEGACY_DEFAULTS: dict[str, Any] = {"draw_rounds": 1, "constraint_rounds": 0}


def load_seed_text(spec: str) -> str:
    """A built-in seed by name, or a source file."""
    if spec in seed_names():
        return seed_source(spec)
    return read_source(spec)


@dataclass
class RunDir:
    """An open run directory: its store (locked for this process), config and inputs."""

    path: Path
    store: RunStore
    config: RunConfig
    seed_text: str
    grammar: Grammar
    seed_program: Program | Bundle  # a Bundle for a candidate of several files
    objective: ObjectiveSpec
    proposer_source: str | None  # the proposing T5's source text; None: self-reference
    warnings: list[str]
    _lock: RunLock | None
    constraint: ConstraintSpec | None = None  # --constraint, as read when the run began
    project: Path | None = None  # the folder candidates are evaluated in (None: none)
    paths: tuple[str, ...] = ()  # the candidate's files, by their paths in the project

    def parse(self, text: str) -> Program:
        """A stored candidate's text, parsed with the run's grammar. A `Bundle` answers
        what proposers ask a `Program`, and reaches only those that read site values or
        the program view (`RunConfig` refuses the paper's `t5` for several files)."""
        return cast(Program, parse_candidate(text, self.grammar))

    @classmethod
    def create(cls, path: Path, config: RunConfig, *, seed_text: str | None = None,
               grammar_toml: str | None = None, objective: ObjectiveSpec | None = None,
               constraint: ConstraintSpec | None = None, force: bool = False) -> RunDir:
        """A new run directory. The keywords give inputs that have no name or file (the
        Python API's source string, TOML text, callable objective or constraint); by
        default they come from the config's `seed_source`, `grammar`, `objective` and
        `constraint`. A folder that holds
        files deepphoenix did not create is refused unless `force`; even then a file of the
        user's that the run would write (``best.py``, ``summary.json``…) is refused, never
        overwritten."""
        path = Path(path).resolve()
        _check_foreign(path, force)
        config.validate()
        project = read_project(config, path, seed_text)
        if project is not None:
            seed_text = bundle_text(project.files)
        elif seed_text is None:
            seed_text = load_seed_text(config.seed_source)
        if grammar_toml is None:
            grammar_toml = _grammar_file_text(config.grammar)
        seed_program = _parse_seed(
            seed_text, _stored_grammar(config.grammar, seed_text, grammar_toml))
        grammar = seed_program.grammar  # relative domains resolved against the seed
        if objective is None:
            objective = resolve_objective(config.objective, config.direction, config.metric)
        if constraint is None and config.constraint is not None:
            constraint = resolve_constraint(config.constraint)
        source_spec = config.proposer_source_spec()
        proposer_source = load_seed_text(source_spec) if source_spec is not None else None
        init = (resolve_init(config.proposer_init, config.format)
                if config.proposer_init is not None else None)
        if init is not None:
            _check_init(init, config.format)
        lock = RunLock.acquire(path, create=True)
        try:
            meta = {"seed_text": seed_text, "grammar_toml": grammar_toml,
                    "objective": objective.to_dict(), "proposer_source": proposer_source,
                    "constraint": constraint.to_dict() if constraint is not None else None,
                    "environment": _environment(config)}
            if project is not None:
                meta["project"] = {"root": str(project.root), "paths": list(project.paths)}
            store = RunStore.create(path, config.to_dict(), meta)
            if init is not None:
                # The run keeps its own copy: a resume must not depend on the original.
                _copy_init(init, path / "data" / INIT_DIR)
        except BaseException:
            lock.release()
            raise
        write_text_atomic(path / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")
        return cls(path, store, config, seed_text, grammar, seed_program, objective,
                   proposer_source, [], lock, constraint,
                   project.root if project is not None else None,
                   project.paths if project is not None else ())

    @classmethod
    def open(cls, path: Path) -> RunDir:
        path = Path(path).resolve()
        lock = RunLock.acquire(path, create=False)
        try:
            store = RunStore.open(path, write=True)
            try:
                config = _stored_config(store.get_meta("config"))
                seed_text = store.get_meta("seed_text")
                if not isinstance(seed_text, str):
                    raise RunDirError(f"{path}: the run was stopped before its seed was "
                                      "stored; start a new run")
                seed_program = _parse_seed(seed_text, _stored_grammar(
                    config.grammar, seed_text, store.get_meta("grammar_toml")))
                # Relative domains resolve against the stored seed: as when it started.
                grammar = seed_program.grammar
                objective = ObjectiveSpec.from_dict(store.objective)
                proposer_source = store.get_meta("proposer_source")
                stored = store.get_meta("constraint")
                constraint = ConstraintSpec.from_dict(stored) if stored else None
                if config.constraint is not None and constraint is None:
                    raise RunDirError(f"{path}: the run names constraint "
                                      f"{config.constraint} but its text was not stored; "
                                      "start a new run")
                root, paths = stored_project(store.get_meta("project"))
                store.upgrade()
            except BaseException:
                store.close()
                raise
        except BaseException:
            lock.release()
            raise
        run = cls(path, store, config, seed_text, grammar, seed_program, objective,
                  proposer_source, [], lock, constraint, root, paths)
        run.check_environment()
        return run

    def close(self) -> None:
        self.store.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def check_environment(self) -> None:
        """Warn when a resume runs where scores or hashes may come out differently."""
        before = self.store.get_meta("environment") or {}
        now = _environment(self.config)
        changed = [f"{k} {before[k]} -> {now[k]}" for k in sorted(now)
                   if k in before and before[k] != now[k]]
        if changed:
            self.warnings.append(
                "resuming in a different environment (" + ", ".join(changed) + "): scores "
                "of new evaluations may not match an uninterrupted run exactly")


def _parse_seed(text: str, grammar: Grammar) -> Program | Bundle:
    """The seed: one file (named "seed" in messages) or a bundle (named by its paths)."""
    return parse_candidate(text, grammar, "seed")


def stored_project(data: Any) -> tuple[Path | None, tuple[str, ...]]:
    """A project run's folder and candidate paths, as the run stored them."""
    if not isinstance(data, dict):
        return None, ()
    root = Path(str(data["root"]))
    if not root.is_dir():
        raise RunDirError(f"the run's project {root} is gone; its candidates are "
                          "evaluated in a copy of it: put it back to resume")
    return root, tuple(str(p) for p in data.get("paths", ()))


def _check_init(model: Path, fmt: str) -> None:
    """A pretrained proposer the run can start from: `CheckpointError` for a folder that
    holds none, `ConfigError` when it writes another format than the run."""
    found = model_format(model)
    if found.value != fmt:
        raise ConfigError(f"--proposer-init {model} writes {found.value}, but the run's "
                          f"--format is {fmt}; pass --format {found.value}")
    if model_view(model) is None:  # the proposers that take one read the program view
        raise ConfigError(f"--proposer-init {model} reads whole sources (pretrained before "
                          "program views); pretrain it again with `deepphoenix proposer "
                          "pretrain`")


def _copy_init(model: Path, to: Path) -> None:
    """The run's own copy of a pretrained proposer, readable by the run's workers (a model
    saved before the training job made its files 0644 may be its user's alone, mode 0600:
    the copy is the run's, 0644)."""
    staging = to.with_name(f".{to.name}.partial")
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(model, staging, copy_function=shutil.copyfile)
    for path in staging.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    staging.rename(to)


# What a run writes at the top of its directory, the lock and the database's journal.
RUN_FILES = frozenset({
    DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal", ".lock",
    "config.json", "data", "episodes", "logs", "best.py", "best", "run_best.py",
    "summary.json",
    "plots", CODET5_DIR.split("/")[0]})


def _check_foreign(path: Path, force: bool) -> None:
    """Refuse a run directory holding files deepphoenix did not create (unless `force`),
    and, always, one where the run would overwrite a file it did not write."""
    if not path.is_dir() or (path / DB_NAME).exists():
        return  # a new folder; or a run, which RunStore.create refuses with its own line
    try:
        names = sorted(p.name for p in path.iterdir())
    except OSError:
        return  # unreadable: creating the run says why
    ours = [n for n in names if n in RUN_FILES]
    if ours:
        shown = ", ".join(ours[:3]) + (" …" if len(ours) > 3 else "")
        raise RunDirError(f"{path} holds files a run writes ({shown}) but no run; they "
                          "are not overwritten: move them or choose another --run-dir")
    if names and not force:
        shown = ", ".join(names[:3]) + (" …" if len(names) > 3 else "")
        raise RunDirError(f"{path} holds files deepphoenix did not create ({shown}); choose "
                          "another --run-dir, or pass --force to put the run among them")


def _stored_config(data: Any) -> RunConfig:
    """The config a run was created with. Keys added to `RunConfig` since then take the
    value that reproduces the old behaviour, not today's default."""
    if not isinstance(data, dict):
        raise RunDirError("the run database holds no run config")
    try:
        return RunConfig.from_dict({**_LEGACY_DEFAULTS, **data})
    except ConfigError as exc:
        raise RunDirError(f"the stored run config cannot run here: {exc}") from None


def _grammar_file_text(spec: str) -> str | None:
    """The TOML text of a grammar given as a file, read once and kept in the run so that
    editing the file later cannot change a resumed run; None for built-in, registered
    and inferred grammars."""
    path = grammar_file(spec) if spec != "infer" else None
    return read_grammar_text(path) if path is not None else None


def _stored_grammar(spec: str, seed_text: str, toml_text: str | None) -> Grammar:
    if toml_text is not None:
        return parse_grammar(toml_text, origin=spec, default_name=Path(spec).stem)
    return resolve_grammar(spec, seed_text, "seed")


def _environment(config: RunConfig) -> dict[str, Any]:
    """What a score or a hash may depend on beyond the config."""
    return {"python": ".".join(platform.python_version_tuple()[:2]),
            "threads": config.worker_threads()}
