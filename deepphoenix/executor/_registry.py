"""The executors by name: `local` and `ray` built in (Ray imported only when chosen),
third parties under the ``deepphoenix.executors`` entry-point group."""

from __future__ import annotations

from collections.abc import Callable

from deepphoenix.executor._base import Executor, ExecutorError, ExecutorSettings
from deepphoenix.executor._local import LocalExecutor
from deepphoenix.registry import Registry

__all__ = ["ENTRY_POINT_GROUP", "EXECUTORS", "executor_names", "get_executor"]

ENTRY_POINT_GROUP = "deepphoenix.executors"


def _ray_executor(settings: ExecutorSettings) -> Executor:
    """The ``ray`` executor, imported only when chosen: Ray is an optional dependency."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ExecutorError("the ray executor needs Ray: pip install 'deepphoenix[ray]'"
                            ) from None
    from deepphoenix.executor._ray import RayExecutor

    return RayExecutor(settings)


EXECUTORS: Registry[Callable[[ExecutorSettings], Executor]] = Registry(
    "executor", ENTRY_POINT_GROUP)
EXECUTORS.register("local", LocalExecutor)
EXECUTORS.register("ray", _ray_executor)


def executor_names() -> list[str]:
    return EXECUTORS.names()


def get_executor(name: str, settings: ExecutorSettings) -> Executor:
    """The executor registered as `name`, built with `settings`."""
    made = EXECUTORS.get(name)(settings)
    if not isinstance(made, Executor):
        raise ExecutorError(
            f"executor {name!r} made a {type(made).__name__}, not a "
            "deepphoenix.executor.Executor: subclass Executor and override run_all (and "
            "lane, to train a proposer)")
    return made
