"""A progress bar for a search run from Python: tqdm's, which draws a widget in a
notebook and a text bar in a terminal. It counts batches (episodes × batches) and shows
the evaluations done and the best score so far."""

from __future__ import annotations

from typing import Any

from deepphoenix.search import Event, RunConfig

__all__ = ["ProgressBar"]


class ProgressBar:
    """Turns run events into a tqdm bar; `close` when the run ends."""

    def __init__(self, config: RunConfig) -> None:
        from tqdm.auto import tqdm

        self.batches = config.batches
        self.bar: Any = tqdm(total=config.episodes * config.batches, unit="batch",
                             desc="deepphoenix", dynamic_ncols=True)
        self.best: float | None = None
        self.done = 0

    def __call__(self, event: Event) -> None:
        f = event.fields
        if event.kind == "seed":
            self.best = f.get("score")
        elif event.kind == "evaluated":
            self.done = int(f.get("done", self.done))
        elif event.kind == "batch_done":
            if f.get("improved"):
                self.best = f.get("score")
            position = (int(f["episode"]) - 1) * self.batches + int(f["batch"])
            self.bar.update(max(0, position - self.bar.n))
        else:
            return
        best = "-" if self.best is None else f"{self.best:.4g}"
        self.bar.set_postfix(evaluations=self.done, best=best, refresh=False)

    def close(self) -> None:
        self.bar.close()
