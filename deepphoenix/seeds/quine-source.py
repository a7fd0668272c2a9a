"""A source quine: a character-level LSTM trained on this file until it predicts every
next character, then asked to print the file from nothing. Run: python quine-source.py"""
import torch
import torch.nn.functional as F
from torch import nn

cell = "lstm"  # lstm | gru
width = 128  # hidden units per layer
layers = 2
optimizer = "adam"  # rmsprop | adam | sgd
lr = 3e-3
steps = 2000  # at most; training stops once every next character is right

OPTIMIZERS = {"rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam,
              "sgd": torch.optim.SGD}
CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}
START, END = 128, 129  # ASCII, then the two markers


class SourceQuine(nn.Module):
    def __init__(self, cell, width, layers):
        super().__init__()
        self.embed = nn.Embedding(130, 32)
        self.rnn = CELLS[cell](32, width, num_layers=layers)
        self.head = nn.Linear(width, 130)

    def forward(self, x, state=None):
        y, state = self.rnn(self.embed(x), state)
        return self.head(y), state


model = SourceQuine(cell, width, layers)


def own_text():
    with open(__file__, encoding="ascii") as f:
        return torch.tensor([START] + [ord(c) for c in f.read()] + [END])


def replicate(model):
    """(the characters it prints free-running, this file's characters): END pads."""
    actual = own_text()[1:]
    printed = torch.full_like(actual, END)
    with torch.no_grad():
        x, state = torch.tensor([START]), None
        for i in range(actual.numel()):
            logits, state = model(x, state)
            x = logits.argmax(-1)
            printed[i] = x[0]
            if x[0] == END:
                break
    return printed, actual


def train(model, ctx=None):
    text = own_text()
    opt = OPTIMIZERS[optimizer](model.parameters(), lr=lr)
    for step in range(steps):
        if ctx is not None and ctx.should_stop():
            break
        logits = model(text[:-1])[0]
        loss = F.cross_entropy(logits, text[1:])
        right = (logits.argmax(-1) == text[1:]).float().mean().item()
        if ctx is not None and step % 20 == 0:
            ctx.report(step, right)
        if right == 1.0:
            return step  # steps it took to predict every next character
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps


if __name__ == "__main__":
    torch.manual_seed(0)
    model = SourceQuine(cell, width, layers)
    taken = train(model)
    printed, actual = replicate(model)
    print(f"# {taken} steps")
    print("".join(chr(c) for c in printed.tolist() if c < START), end="")
