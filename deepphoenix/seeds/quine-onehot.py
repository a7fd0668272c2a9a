"""A neural quine queried by one-hot vectors: one trainable size x size matrix (no bias)
between fixed random projections, asked for each of its own weights by a one-hot row
and a one-hot column, so the query itself carries the shape. All weights in one batch.
Run it: python quine-onehot.py"""
import torch
import torch.nn.functional as F
from torch import nn

size = 16  # N: the trained matrix is N x N, the network predicts its N * N weights
query = "onehot"  # coords: (row, col) in [-1, 1] | onehot: one-hot row and column
norm = "none"  # none | batch | instance: parameter-free normalisation after the matrix
gradient_every = 1  # every k steps an optimizer step on the replication loss (0: never)
regenerate_every = 0  # every k steps the weights move to their own prediction (0: never)
relax = 1.0  # how far a regeneration moves them: W <- W + relax * (f(W) - W); 1: W <- f(W)
keep_best = True  # end at the step whose weights replicated best, as the write-up's code
optimizer = "rmsprop"  # rmsprop | adam | sgd
lr = 1e-2
steps = 2000

OPTIMIZERS = {"rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam,
              "sgd": torch.optim.SGD}


class WeightQuine(nn.Module):
    def __init__(self, n, query, norm):
        super().__init__()
        self.n, self.norm = n, norm
        rows, cols = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        if query == "coords":
            queries = torch.stack([rows, cols], -1).reshape(-1, 2).float() * 2 / max(n - 1, 1) - 1
        else:
            queries = torch.cat([F.one_hot(rows.flatten(), n), F.one_hot(cols.flatten(), n)],
                                -1).float()
        self.register_buffer("queries", queries)
        # Fixed, never trained: part of the environment, not of the quine.
        self.register_buffer("inp", nn.Linear(queries.shape[1], n, bias=False).weight.T.clone())
        self.weight = nn.Parameter(nn.Linear(n, n, bias=False).weight.detach().clone())
        self.register_buffer("out", nn.Linear(n, 1, bias=False).weight.T.clone())

    def forward(self, queries):
        h = torch.relu(queries @ self.inp) @ self.weight.T
        if self.norm == "batch":  # over the queries: all weights are asked at once
            h = F.batch_norm(h, None, None, training=True)
        elif self.norm == "instance":  # over each query's features
            h = F.instance_norm(h.unsqueeze(1)).squeeze(1)
        return (torch.relu(h) @ self.out).squeeze(-1)


model = WeightQuine(size, query, norm)


def replicate(model):
    """(the weights the network predicts, its actual weights): the same shape."""
    with torch.no_grad():
        return model(model.queries).reshape(model.weight.shape), model.weight.detach().clone()


def train(model, ctx=None):
    """Each step measures how well the weights replicate, then takes the optimizer step
    and the regeneration due. Returns the steps run and the step whose weights it kept."""
    weight = model.weight
    opt = OPTIMIZERS[optimizer]([weight], lr=lr)
    best, kept, best_weight = float("inf"), 0, weight.detach().clone()
    done = 0
    for step in range(steps):
        if ctx is not None and ctx.should_stop():
            break
        descend = gradient_every > 0 and step % gradient_every == 0
        with torch.set_grad_enabled(descend):
            predicted = model(model.queries)
            loss = F.mse_loss(predicted, weight.flatten())
        error = loss.item()
        if error < best:
            best, kept, best_weight = error, step, weight.detach().clone()
        if descend:
            opt.zero_grad()
            loss.backward()
            opt.step()
        if regenerate_every and step % regenerate_every == 0:
            with torch.no_grad():
                if descend:  # the prediction of the weights the optimizer just moved
                    predicted = model(model.queries)
                weight.add_(relax * (predicted.view_as(weight) - weight))
        done = step + 1
        if ctx is not None and step % 100 == 0:
            ctx.report(step, error)
    if keep_best:
        with torch.no_grad():
            weight.copy_(best_weight)
        return {"steps": done, "best_step": kept}
    return {"steps": done}


if __name__ == "__main__":
    torch.manual_seed(0)
    model = WeightQuine(size, query, norm)
    trained = train(model)
    predicted, actual = replicate(model)
    rmse = (predicted - actual).pow(2).mean().sqrt().item()
    kept = f"  (step {trained['best_step']} of {trained['steps']} kept)" if keep_best else ""
    print(f"rmse {rmse:.3e}  relative {rmse / actual.std().item():.3e}  "
          f"weights in [{actual.min().item():.3f}, {actual.max().item():.3f}]{kept}")
