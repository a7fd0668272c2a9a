"""Proposers produce edits. `RandomProposer` draws from the grammar (and builds the
refinement dataset); the learned T5 proposer lives in `deepphoenix.proposers.t5` and is
imported only when used, so this package does not import torch."""

from deepphoenix.proposers._random import DistinctVariants, Proposal, RandomProposer

__all__ = ["DistinctVariants", "Proposal", "RandomProposer"]
