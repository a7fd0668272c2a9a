"""`GPDrawer`: Optuna's `GPSampler` (Gaussian-process Bayesian optimisation) over a
grammar's sites, as a drawer: the ``gp`` proposer, and the GP sampler's suggestions in
``learned``'s pool. The strongest off-the-shelf baseline for a small mixed space.

Everything but the sampler is `TPEDrawer`'s: the sites' distributions, derived sites, the
mending of draws that break an invariant, and a study rebuilt from every observed result
before each batch (so a resumed run asks what an uninterrupted one would). `GPSampler`
keeps one batch's asks apart itself: it conditions on the trials that are still running.
It needs SciPy and torch (it fits its kernel with torch, in this process, when the first
batch is asked); it draws its first ten candidates at random, as TPE does. This process's
torch runs on one thread: its OpenMP and inter-op pools otherwise fight each other and
NumPy's for the cores, and a batch's asks took over ten times as long on two cores
(Optuna's "runtime performance note" on GPSampler; it limits only the intra-op threads).
"""

from __future__ import annotations

import contextlib
import importlib.util
from typing import Any

from deepphoenix.errors import ConfigError
from deepphoenix.proposers._tpe_drawer import TPEDrawer

__all__ = ["GPDrawer"]


class GPDrawer(TPEDrawer):
    """Optuna's GP-BO over the parent program's proposable sites."""

    def sampler(self, seed: int) -> Any:
        # GPSampler imports both lazily, mid-ask: say so up front.
        if importlib.util.find_spec("scipy") is None:  # pragma: no cover - a dependency
            raise ConfigError("the gp proposer needs SciPy: pip install scipy")
        import torch

        _one_thread(torch)
        return self.optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)


def _one_thread(torch: Any) -> None:
    """torch on one thread in this process (which runs no other torch work: models train
    in sandbox workers, whose threads are set apart)."""
    torch.set_num_threads(1)
    # settable once per process: set already, or inter-op work has begun
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
