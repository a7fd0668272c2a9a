"""Running a wired `Run` to its end from Python (`execute`), with a progress bar: tqdm's,
which draws a widget in a notebook and a text bar in a terminal. It counts batches
(episodes × batches) and shows the evaluations done and the best score so far."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deepphoenix.engine import (
    BatchDone,
    Evaluated,
    Event,
    Run,
    RunConfig,
    RunSummary,
    SeedScored,
)

__all__ = ["ProgressBar", "execute"]


class ProgressBar:
    """Turns run events into a tqdm bar; `close` when the run ends."""

    def __init__(self, config: RunConfig) -> None:
        tqdm = _tqdm()

        self.batches = config.batches
        self.bar: Any = tqdm(total=config.episodes * config.batches, unit="batch",
                             desc="deepphoenix", dynamic_ncols=True)
        self.best: float | None = None
        self.done = 0

    def __call__(self, event: Event) -> None:
        if isinstance(event, SeedScored):
            self.best = event.score
        elif isinstance(event, Evaluated):
            self.done = event.done
        elif isinstance(event, BatchDone):
            if event.improved:
                self.best = event.score
            position = (event.episode - 1) * self.batches + event.batch
            self.bar.update(max(0, position - self.bar.n))
        else:
            return
        best = "-" if self.best is None else f"{self.best:.4g}"
        self.bar.set_postfix(evaluations=self.done, best=best, refresh=False)

    def close(self) -> None:
        self.bar.close()


def _tqdm() -> Any:
    """tqdm.auto's class (a widget in a notebook) when ipywidgets is there to draw it; the
    text bar otherwise (tqdm.auto would warn in every notebook without ipywidgets)."""
    import importlib.util

    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm as auto

        return auto
    from tqdm import tqdm as text

    return text


def execute(run: Run, *, quiet: bool = False,
            on_event: Callable[[Event], None] | None = None) -> RunSummary:
    """Run `run` to its end with a progress bar (unless `quiet`) and `on_event`; the run
    directory is closed however it ends. Ctrl-C loses no finished evaluation: the
    `KeyboardInterrupt` goes on with a note on how to continue."""
    bar = None if quiet else ProgressBar(run.config)

    def emit(event: Event) -> None:
        if bar is not None:
            bar(event)
        if on_event is not None:
            on_event(event)

    run.on_event = emit
    try:
        return run.execute()
    except KeyboardInterrupt as exc:
        done = run.store.evaluations_done()
        exc.add_note(f"{done} evaluations are saved in {run.run_dir}; continue with "
                     f"deepphoenix.load({str(run.run_dir)!r}).resume()")
        raise
    finally:
        if bar is not None:
            bar.close()
        run.close()
