"""Prepare a character-level data set, written for deepphoenix's tests in the style of
nanoGPT's data/shakespeare_char/prepare.py: input.txt next to this file (the tests write
one; nothing is downloaded) becomes train.bin, val.bin and meta.pkl."""

import os
import pickle

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "input.txt")) as f:
    data = f.read()
chars = sorted(set(data))
stoi = {ch: i for i, ch in enumerate(chars)}
ids = np.array([stoi[c] for c in data], dtype=np.uint16)
split = int(len(ids) * 0.9)
ids[:split].tofile(os.path.join(here, "train.bin"))
ids[split:].tofile(os.path.join(here, "val.bin"))
with open(os.path.join(here, "meta.pkl"), "wb") as f:
    pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}, f)
print(f"vocab size {len(chars)}, train {split:,} tokens, val {len(ids) - split:,} tokens")
