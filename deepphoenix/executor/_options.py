"""`ExecutorOptions`: where a run's sandboxed jobs run and what each reserves there (the
executor's name and its cluster options), owned and validated here, by the executor
package. A run's config holds the same values as its flat fields (``executor``,
``ray_address``, ``gpus_per_eval``, ``train_on``: `OPTION_FIELDS`, the command line's
``--executor``, ``--ray-address``, ...) and hands them over through
`RunConfig.executor_options`, so a bad option gives one error, said by its owner."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from deepphoenix.errors import ConfigError, UnknownNameError
from deepphoenix.executor._base import ExecutorSettings
from deepphoenix.executor._registry import executor_names
from deepphoenix.sandbox import WorkerSettings

__all__ = ["OPTION_FIELDS", "TRAIN_ON", "ExecutorOptions"]

TRAIN_ON = ("cpu", "gpu")  # where a cluster executor puts the proposer's lane
# The options' names where a run's config and the command line hold them.
OPTION_FIELDS = ("executor", "ray_address", "gpus_per_eval", "train_on")


@dataclass(frozen=True, slots=True)
class ExecutorOptions:
    """Which executor a run uses and where it places work. `local` takes no placement
    option (`--device` picks the device); any other executor may take them (`ray` needs
    Ray installed)."""

    executor: str = "local"  # a registered executor: local | ray | a third party's
    ray_address: str | None = None  # a cluster's head HOST:PORT (None: a local instance)
    gpus_per_eval: float = 0.0  # GPUs an evaluation worker reserves (0.25: 4 share one)
    train_on: str = "cpu"  # where the proposer trains and samples: cpu | gpu (one GPU)

    @classmethod
    def of(cls, values: Any) -> ExecutorOptions:
        """The options held as `OPTION_FIELDS` attributes of `values` (a run's config)."""
        return cls(**{name: getattr(values, name) for name in OPTION_FIELDS})

    def to_dict(self) -> dict[str, Any]:
        """The options by their `OPTION_FIELDS` names."""
        return asdict(self)

    def validate(self) -> None:
        """Raise `ConfigError` (one line) for an option this executor cannot take."""
        if self.executor not in executor_names():
            raise UnknownNameError("executor", str(self.executor), executor_names())
        if self.train_on not in TRAIN_ON:
            raise UnknownNameError("train-on", str(self.train_on), TRAIN_ON)
        gpus = self.gpus_per_eval
        if (not isinstance(gpus, int | float) or isinstance(gpus, bool) or gpus < 0
                or not math.isfinite(gpus) or (gpus > 1 and gpus != int(gpus))):
            raise ConfigError(f"Expected a fraction of one GPU or whole GPUs but got "
                              f"gpus_per_eval={gpus!r} (type={type(gpus).__name__})")
        if self.executor == "local":
            asked = [flag for flag, value in (("--ray-address", self.ray_address),
                                              ("--gpus-per-eval", gpus),
                                              ("--train-on gpu", self.train_on == "gpu"))
                     if value]
            if asked:
                raise ConfigError(f"{', '.join(asked)} needs --executor ray (placement on a "
                                  "cluster; locally, --device picks the device)")
        elif self.executor == "ray" and not _installed("ray"):
            raise ConfigError("the ray executor needs Ray: pip install 'deepphoenix[ray]'")

    def settings(self, workers: int, worker: WorkerSettings, lane: WorkerSettings,
                 log_dir: Path | None = None) -> ExecutorSettings:
        """What the executor is told: `workers` evaluation workers started with `worker`,
        the proposer's lane with `lane`, and these options' placement."""
        return ExecutorSettings(
            workers=workers, worker=worker, lane=lane, log_dir=log_dir,
            address=self.ray_address, gpus_per_worker=self.gpus_per_eval,
            lane_gpus=1.0 if self.train_on == "gpu" else 0.0)


def _installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules
        return False
