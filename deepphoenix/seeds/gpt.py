import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

# Learning dynamics. Small byte-level models on CPU take a high learning rate well.
lr = 3e-3  # peak step size; a few-shot epoch is only a handful of steps
batch_size = 16  # blocks per optimizer step; 16 x 64 bytes keeps a CPU step fast
weight_decay = 0.01  # light regularization (the built-in loop decays every parameter)
optimizer = "adamw"  # one of "adamw", "adam", "sgd"
epochs = 1  # passes over the training blocks


@dataclass
class GPTConfig:
    block_size: int = 64  # longest context, in bytes
    vocab_size: int = 256  # byte-level: one token per byte value
    n_layer: int = 2  # transformer blocks
    n_head: int = 4  # attention heads; must divide n_embd
    n_embd: int = 128  # residual stream width
    dropout: float = 0.0  # on attention weights, residual branches and embeddings
    bias: bool = True  # biases in Linear and LayerNorm layers
    activation: str = "gelu"  # MLP nonlinearity: "gelu", "relu" or "silu"


ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}


class Norm(nn.LayerNorm):
    # LayerNorm over the residual width, with a bias when config.bias.
    def __init__(self, config):
        super().__init__(config.n_embd, bias=config.bias)


class Positions(nn.Module):
    # Learned absolute positions: a table added to the token embeddings.
    def __init__(self, config):
        super().__init__()
        self.table = nn.Embedding(config.block_size, config.n_embd)

    def forward(self, x):
        return x + self.table(torch.arange(x.shape[1], device=x.device))

    def rotate(self, q, k):
        return q, k


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0, "n_head must divide n_embd"
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_drop = nn.Dropout(config.dropout)

    def forward(self, x, pos):
        B, T, C = x.shape
        # (B, T, 3C) -> three (B, n_head, T, head_dim) tensors
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        q, k = pos.rotate(q, k)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(B, T, C)))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.up = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.act = ACTIVATIONS[config.activation]()
        self.down = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.drop(self.down(self.act(self.up(x))))


class Block(nn.Module):
    # Attention, then the MLP, each with its norm; the layout (pre-norm: each branch reads a
    # normalized copy and adds to the residual stream) is a structural site of the grammar.
    def __init__(self, config):
        super().__init__()
        self.ln1 = Norm(config)
        self.attn = CausalSelfAttention(config)
        self.ln2 = Norm(config)
        self.mlp = MLP(config)

    def forward(self, x, pos):
        x = x + self.attn(self.ln1(x), pos)
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos = Positions(config)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = Norm(config)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # weight tying: one byte table, read both ways
        self.apply(self._init_weights)
        # Residual output projections shrink with depth so the stream's variance stays put.
        for name, param in self.named_parameters():
            if name.endswith(("proj.weight", "down.weight")):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx):
        """Logits (B, T, vocab_size) for a LongTensor of byte ids (B, T), T <= block_size."""
        T = idx.shape[1]
        assert T <= self.config.block_size, f"sequence of {T} exceeds block_size"
        x = self.drop(self.pos(self.tok_emb(idx)))
        for block in self.blocks:
            x = block(x, self.pos)
        return self.head(self.ln_f(x))


model = GPT(GPTConfig(n_layer=2, n_head=4, n_embd=128, dropout=0.0, activation="gelu"))
