"""A training script written for deepphoenix's tests, in the style of nanoGPT's train.py."""

import math
import os
import time
from contextlib import nullcontext

import torch

from model import GPT, GPTConfig

# I/O
out_dir = "out"
eval_interval = 2000
log_interval = 1
eval_iters = 200
always_save_checkpoint = True
# data
dataset = "openwebtext"
gradient_accumulation_steps = 5 * 8
batch_size = 12
block_size = 1024
# model
n_layer = 12
n_head = 12
n_embd = 768
dropout = 0.0
bias = False
# optimiser
learning_rate = 6e-4
max_iters = 600000
weight_decay = 1e-1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0
# learning-rate schedule
decay_lr = True
warmup_iters = 2000
lr_decay_iters = 600000
min_lr = 6e-5
# system
device = "cuda"
dtype = "bfloat16"
compile = True
seed_offset = 0

torch.manual_seed(1337 + seed_offset)
ctx = nullcontext() if device == "cpu" else torch.autocast(device_type="cuda", dtype=torch.bfloat16)
model_args = dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size,
                  bias=bias, vocab_size=None, dropout=dropout)
model = GPT(GPTConfig(**model_args))
optimizer = model.configure_optimizers(weight_decay, learning_rate, (beta1, beta2), "cuda")


def get_lr(it):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))
    return min_lr + coeff * (learning_rate - min_lr)


iter_num = 0
best_val_loss = 1e9
t0 = time.time()
while iter_num <= max_iters:
    lr = get_lr(iter_num) if decay_lr else learning_rate
    for group in optimizer.param_groups:
        group["lr"] = lr
    if iter_num % eval_interval == 0 and iter_num > 0:
        os.makedirs(out_dir, exist_ok=True)
        best_val_loss = min(best_val_loss, lr)
    iter_num += 1
