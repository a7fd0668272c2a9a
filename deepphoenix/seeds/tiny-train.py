import torch
import transformers

# Learning dynamics (the paper's Algorithm 1: the source also defines how it trains).
lr = 1e-3  # AdamW's step size
batch_size = 16  # pairs per optimizer step
weight_decay = 0.01
optimizer = "adamw"  # adamw | adam | sgd
epochs = 2  # passes over the refinement pairs when this model trains as the proposer

config = transformers.AutoConfig.from_pretrained("Salesforce/codet5-small")
config.d_model = 128
config.num_layers = 2
config.num_decoder_layers = 2
config.d_ff = 256
config.num_heads = 4
config.d_kv = 32
config.dropout_rate = 0.1
config.feed_forward_proj = "relu"
model = transformers.T5ForConditionalGeneration(config)

OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def train(model, ctx):
    # ctx.batches() is the data budget the run grants; ctx.loss() is the trusted loss,
    # recorded for the score. Everything else here is this program's own choice.
    opt = OPTIMIZERS[optimizer](model.parameters(), lr=lr, weight_decay=weight_decay)
    for batch in ctx.batches():
        loss = ctx.loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
