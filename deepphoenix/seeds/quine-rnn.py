"""A recurrent weight quine: an RNN reads its own parameters as one sequence and predicts
each from the one before it (teacher forcing; the first input is 0). Every parameter is
a target, nothing is fixed. Free-running, fed its own outputs from a 0, it should print
all of its weights in order. Run it: python quine-rnn.py"""
import torch
import torch.nn.functional as F
from torch import nn

cell = "lstm"  # lstm | gru
width = 8  # hidden units per layer
layers = 1
regenerate_every = 0  # 0: off; k: every k steps, weights <- the free-running prediction
keep_best = True  # end at the step with the lowest teacher-forced loss, as the write-up's code
optimizer = "adam"  # rmsprop | adam | sgd
lr = 1e-2
steps = 200

OPTIMIZERS = {"rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam,
              "sgd": torch.optim.SGD}
CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentQuine(nn.Module):
    def __init__(self, cell, width, layers):
        super().__init__()
        self.rnn = CELLS[cell](input_size=1, hidden_size=width, num_layers=layers)
        self.head = nn.Linear(width, 1)

    def forward(self, x, state=None):
        y, state = self.rnn(x, state)
        return self.head(y), state

    def flat(self):
        return torch.cat([p.flatten() for p in self.parameters()])


model = RecurrentQuine(cell, width, layers)


def replicate(model):
    """(the sequence it prints free-running from a 0, its actual parameters)."""
    actual = model.flat().detach().clone()
    with torch.no_grad():
        x, state, printed = torch.zeros(1, 1), None, []
        for _ in range(actual.numel()):
            x, state = model(x, state)
            x = x[-1:]
            printed.append(x.flatten())
    return torch.cat(printed), actual


def train(model, ctx=None):
    """Returns the steps run and the step whose parameters it kept."""
    opt = OPTIMIZERS[optimizer](model.parameters(), lr=lr)
    best, kept, best_flat = float("inf"), 0, model.flat().detach().clone()
    done = 0
    for step in range(steps):
        if ctx is not None and ctx.should_stop():
            break
        if regenerate_every and step % regenerate_every == 0:
            with torch.no_grad():
                nn.utils.vector_to_parameters(replicate(model)[0], model.parameters())
        y = model.flat().unsqueeze(-1)
        x = torch.cat([torch.zeros(1, 1), y[:-1].detach()])
        loss = F.mse_loss(model(x)[0], y)
        error = loss.item()
        if error < best:
            best, kept, best_flat = error, step, y.detach().flatten().clone()
        opt.zero_grad()
        loss.backward()
        opt.step()
        done = step + 1
        if ctx is not None and step % 20 == 0:
            ctx.report(step, error)
    if keep_best:
        with torch.no_grad():
            nn.utils.vector_to_parameters(best_flat, model.parameters())
        return {"steps": done, "best_step": kept}
    return {"steps": done}


if __name__ == "__main__":
    torch.manual_seed(0)
    model = RecurrentQuine(cell, width, layers)
    trained = train(model)
    predicted, actual = replicate(model)
    rmse = (predicted - actual).pow(2).mean().sqrt().item()
    near = (actual - actual.median()).abs() <= 1e-3 * (actual.max() - actual.min())
    kept = f"  (step {trained['best_step']} of {trained['steps']} kept)" if keep_best else ""
    print(f"{actual.numel()} weights  rmse {rmse:.3e}  relative {rmse / actual.std().item():.3e}"
          f"  {near.float().mean().item():.0%} at the median{kept}")
