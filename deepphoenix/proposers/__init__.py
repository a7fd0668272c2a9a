"""Proposers produce edits. `RandomProposer` draws from the grammar (and builds the
refinement dataset); the learned `T5Proposer` (``deepphoenix.proposers._t5``) drives a
sandbox worker and grounds what it samples. Nothing here imports torch; the worker does."""

from deepphoenix.proposers._dataset import (
    RefinementPair,
    iter_pairs,
    make_dataset,
    read_pairs,
    write_pairs,
)
from deepphoenix.proposers._distinct import draw_distinct
from deepphoenix.proposers._random import DistinctVariants, Proposal, RandomProposer

__all__ = [
    "DistinctVariants",
    "Proposal",
    "RandomProposer",
    "RefinementPair",
    "draw_distinct",
    "iter_pairs",
    "make_dataset",
    "read_pairs",
    "write_pairs",
]
