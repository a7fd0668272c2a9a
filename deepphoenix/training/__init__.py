"""Training, on the worker side: executing a program and reading what it defines (its
model, learning dynamics and own ``train()``), the tasks and their trusted losses, the
`TrainContext` every training loop goes through, and the built-in loop. Importing this
package does not import torch; the functions do when a worker calls them."""

from deepphoenix.training._context import FitResult, NonFiniteLoss, TrainContext, autocast
from deepphoenix.training._fit import NoLossReported, fit, train_model
from deepphoenix.training._program import (
    OPTIMIZERS,
    PROGRAM_MODULE,
    BuildFailure,
    Dynamics,
    count_parameters,
    counted_model,
    exec_program,
    is_module,
    make_optimizer,
    program_model,
    seq2seq_model,
    write_codet5_config,
)
from deepphoenix.training._tasks import TASKS, Batch, Task, TaskError, get_task, load_rows

__all__ = [
    "OPTIMIZERS",
    "PROGRAM_MODULE",
    "TASKS",
    "Batch",
    "BuildFailure",
    "Dynamics",
    "FitResult",
    "NoLossReported",
    "NonFiniteLoss",
    "Task",
    "TaskError",
    "TrainContext",
    "autocast",
    "count_parameters",
    "counted_model",
    "exec_program",
    "fit",
    "get_task",
    "is_module",
    "load_rows",
    "make_optimizer",
    "program_model",
    "seq2seq_model",
    "train_model",
    "write_codet5_config",
]
