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
regenerate_every = 0  # 0: off; k: every k steps, weights <- the network's own prediction
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
    opt = OPTIMIZERS[optimizer]([model.weight], lr=lr)
    for step in range(steps):
        if ctx is not None and ctx.should_stop():
            break
        if regenerate_every and step % regenerate_every == 0:
            with torch.no_grad():
                model.weight.copy_(replicate(model)[0])
        loss = F.mse_loss(model(model.queries), model.weight.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if ctx is not None and step % 100 == 0:
            ctx.report(step, loss.item())


if __name__ == "__main__":
    torch.manual_seed(0)
    model = WeightQuine(size, query, norm)
    train(model)
    predicted, actual = replicate(model)
    rmse = (predicted - actual).pow(2).mean().sqrt().item()
    print(f"rmse {rmse:.3e}  relative {rmse / actual.std().item():.3e}  "
          f"weights in [{actual.min().item():.3f}, {actual.max().item():.3f}]")
