"""The worker side of training, run in this process: executing programs, reading their
learning dynamics, the data budget and trusted loss of `TrainContext`, and held-out losses
that a model cannot win by looking ahead."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deepphoenix.seeds import seed_source
from deepphoenix.training import (
    BuildFailure,
    Dynamics,
    NoLossReported,
    NonFiniteLoss,
    TrainContext,
    exec_program,
    get_task,
    program_model,
    seq2seq_model,
    train_model,
)

DATACLASS_PROGRAM = '''
from dataclasses import dataclass, field
import torch

@dataclass
class Config:
    width: int = 8
    extra: list = field(default_factory=list)

class Net(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        self.body = torch.nn.Linear(config.width, 2)

model = Net(Config(width=4))
lr = 0.05
batch_size = 3
optimizer = "sgd"
'''


def test_a_program_using_dataclass_builds(tmp_path: Path) -> None:
    program = exec_program(DATACLASS_PROGRAM, tmp_path, seed=0)
    model = program_model(program)
    assert model.body.in_features == 4
    with pytest.raises(TypeError):
        program["lr"] = 1.0  # type: ignore[index]  # read-only


def test_dynamics_come_from_the_program_else_the_defaults(tmp_path: Path) -> None:
    program = exec_program(DATACLASS_PROGRAM, tmp_path, seed=0)
    dynamics = Dynamics.read(program, Dynamics(lr=1e-3, batch_size=16, epochs=2))
    assert (dynamics.lr, dynamics.batch_size, dynamics.optimizer) == (0.05, 3, "sgd")
    assert dynamics.epochs == 2 and dynamics.train is None
    assert Dynamics.read({}, Dynamics()) == Dynamics()


@pytest.mark.parametrize(("name", "value", "message"), [
    ("lr", -1.0, "Expected a finite number > 0 but got lr=-1.0"),
    ("lr", float("nan"), "lr=nan"),
    ("batch_size", 0, "Expected int >= 1 but got batch_size=0"),
    ("batch_size", "8", "batch_size='8' (type=str)"),
    ("optimizer", "lion", "optimizer='lion'"),
    ("train", 3, "`train` is a int"),
])
def test_unusable_dynamics_are_a_build_failure_that_names_them(name: str, value: object,
                                                                message: str) -> None:
    with pytest.raises(BuildFailure, match=message.replace("(", r"\(").replace(")", r"\)")):
        Dynamics.read({name: value}, Dynamics())


def test_programs_that_define_no_usable_model_are_build_failures(tmp_path: Path) -> None:
    with pytest.raises(BuildFailure, match="defines no `model`"):
        program_model(exec_program("x = 1\n", tmp_path, seed=0))
    with pytest.raises(BuildFailure, match=r"not a torch\.nn\.Module"):
        program_model(exec_program("model = 3\n", tmp_path, seed=0))
    program = exec_program(DATACLASS_PROGRAM, tmp_path, seed=0)
    with pytest.raises(BuildFailure, match="not a transformers encoder-decoder"):
        seq2seq_model(program, 400)


def _blocks(count: int, length: int = 9) -> list[list[int]]:
    rng = torch.Generator().manual_seed(0)
    return torch.randint(0, 16, (count, length), generator=rng).tolist()


class _Bigram(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.table = torch.nn.Embedding(16, 16)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.table(idx)


def test_the_budget_is_handed_out_once_and_the_first_loss_of_each_batch_recorded() -> None:
    ctx = TrainContext(get_task("code-lm"), _blocks(10), device="cpu", seed=0, batch_size=4)
    model = _Bigram()
    batches = list(ctx.batches())
    assert [b.size for b in batches] == [4, 4, 2] and not list(ctx.batches())
    first = ctx.loss(model, batches[0])
    ctx.loss(model, batches[0])  # a second look at the same batch is not recorded
    ctx.loss(model, batches[1])
    assert ctx.result.steps == 2 and ctx.result.losses[0] == pytest.approx(float(first.detach()))
    other = TrainContext(get_task("code-lm"), _blocks(4), device="cpu", seed=0, batch_size=4)
    with pytest.raises(TypeError, match="batch from this ctx"):
        other.loss(model, batches[2])


def test_a_non_finite_loss_is_raised_and_recorded() -> None:
    class Broken(_Bigram):
        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            return super().forward(idx) * float("nan")

    ctx = TrainContext(get_task("code-lm"), _blocks(4), device="cpu", seed=0, batch_size=4)
    with pytest.raises(NonFiniteLoss, match="non-finite loss: nan at step 1"):
        train_model(Broken(), ctx, Dynamics())


def test_a_train_function_that_computes_nothing_cannot_be_scored() -> None:
    ctx = TrainContext(get_task("code-lm"), _blocks(4), device="cpu", seed=0, batch_size=4)
    with pytest.raises(NoLossReported):
        train_model(_Bigram(), ctx, Dynamics(train=lambda model, ctx: None))


def test_the_learning_rate_of_the_built_in_loop_changes_the_score() -> None:
    def mean_loss(lr: float) -> float:
        torch.manual_seed(0)
        counting = [[(start + i) % 16 for i in range(9)] for start in range(64)]
        ctx = TrainContext(get_task("code-lm"), counting, device="cpu", seed=0, batch_size=8)
        return train_model(_Bigram(), ctx, Dynamics(lr=lr)).mean_loss

    assert mean_loss(0.1) < mean_loss(1e-4) - 0.05


class _LooksAhead(torch.nn.Module):
    """Predicts each next byte by reading it from the input: perfect under teacher
    forcing, no better than chance when the next byte is not in its input."""

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        ahead = torch.roll(idx, shifts=-1, dims=1)
        return torch.nn.functional.one_hot(ahead, 256).float() * 50.0


def test_a_model_that_looks_ahead_gains_nothing_on_the_held_out_loss() -> None:
    task = get_task("code-lm")
    rows = _blocks(16, length=33)
    tensors = task.collate(rows, "cpu")
    teacher_forced = float(task.loss(_LooksAhead(), tensors))
    held_out = task.heldout_loss(_LooksAhead(), rows, "cpu", batch_size=8)
    assert teacher_forced < 5.0 < held_out


def test_the_held_out_loss_of_a_causal_model_equals_its_teacher_forced_loss() -> None:
    # For a model that does not look ahead, scoring each position from its prefix gives
    # what one teacher-forced pass gives (checked on the GPT seed and on T5).
    import transformers

    namespace: dict[str, object] = {}
    exec(compile(seed_source("gpt"), "<gpt>", "exec"), namespace)
    gpt = namespace["model"]
    assert isinstance(gpt, torch.nn.Module)
    task = get_task("code-lm")
    rows = _blocks(8, length=17)
    gpt.eval()
    with torch.no_grad():
        full = float(task.loss(gpt, task.collate(rows, "cpu")))
    assert task.heldout_loss(gpt, rows, "cpu", batch_size=4) == pytest.approx(full, rel=1e-5)

    config = transformers.T5Config(vocab_size=32, d_model=16, d_kv=4, d_ff=32, num_layers=1,
                                   num_decoder_layers=1, num_heads=4, decoder_start_token_id=0,
                                   pad_token_id=0)
    t5 = transformers.T5ForConditionalGeneration(config).eval()
    pairs = [([5, 6, 7], [8, 9, 10, 11]), ([12, 13], [14, 15])]
    seq2seq = get_task("refinement")
    with torch.no_grad():
        full = float(seq2seq.loss(t5, seq2seq.collate(pairs, "cpu")))
    assert seq2seq.heldout_loss(t5, pairs, "cpu", batch_size=2) == pytest.approx(full, rel=1e-5)
