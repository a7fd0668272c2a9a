"""Seeds derived from a run's seed, one per purpose (below every engine module)."""

from __future__ import annotations

import hashlib

__all__ = ["derive_seed"]


def derive_seed(seed: int, *parts: object) -> int:
    """A 31-bit seed for one purpose of a run (data, training, a batch's proposals)."""
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF
