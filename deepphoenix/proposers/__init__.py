"""Proposers produce candidate edits. The seam is a small ask/tell protocol (`Proposer`,
made by a registered factory from a `ProposerContext`); built-ins are ``random`` (the
grammar's refinements), ``t5`` (the paper's learned proposer, which drives a sandbox
worker and grounds what it samples), ``learned`` (a T5 that also learns from the run's
scored variants and ranks a wide sample with a surrogate), ``tpe`` and ``gp`` (Optuna's
TPE and GP-BO over the sites), and the learned proposer's ablations ``random-gp``,
``random-gp-multi`` and ``t5-only``. `RandomProposer` also
builds the refinement dataset. ``learned`` and ``t5-only`` read the *program view*
(`view_text`: each proposable site's name, value and domain, one line a site), so a long
model file costs what its sites cost; ``t5`` reads the whole source, as the paper's does.
Nothing here imports torch; the workers do.

Classes are named after what they are: `PaperT5Proposer` (``t5``), `HindsightProposer`
(``learned``), `T5Sampler` (the worker-held T5 both use; not a `Proposer`). The old names
`LearnedProposer`, `LineageProposer` and `T5Proposer` are deprecated aliases, kept for one
release: using one warns (`DeprecationWarning`) and names the new name."""

import warnings
from typing import Any

from deepphoenix.proposers._ablations import (
    RandomGPMultiProposer,
    RandomGPProposer,
    T5OnlyProposer,
)
from deepphoenix.proposers._builtin import PaperT5Proposer, RandomRefiner
from deepphoenix.proposers._dataset import (
    RefinementPair,
    iter_pairs,
    make_dataset,
    read_pairs,
    write_pairs,
)
from deepphoenix.proposers._distinct import draw_distinct
from deepphoenix.proposers._gp import GPProposer
from deepphoenix.proposers._lineage import HindsightProposer, hindsight_pairs
from deepphoenix.proposers._protocol import (
    ENTRY_POINT_GROUP,
    Observation,
    Proposer,
    ProposerContext,
    ProposerFactory,
    accepts_init,
    get_proposer,
    needs_refinement_data,
    proposer_factory,
    proposer_names,
    reads_program_view,
    register_proposer,
    unregister_proposer,
)
from deepphoenix.proposers._random import DistinctVariants, Proposal, RandomProposer
from deepphoenix.proposers._t5 import (
    MAX_TOKENS,
    ProposerData,
    SampleSettings,
    T5Sampler,
    TrainSettings,
    longest_pair,
    model_format,
    model_view,
    prepare_data,
    too_long_message,
)
from deepphoenix.proposers._tpe import TPEProposer, site_distributions
from deepphoenix.proposers._view import (
    VIEW_VERSION,
    full_script,
    view_sites,
    view_target,
    view_text,
)
from deepphoenix.proposers._vocab import (
    Vocabulary,
    build_vocabulary,
    shared_record,
    shared_tokenizer_path,
    write_vocabulary,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "MAX_TOKENS",
    "VIEW_VERSION",
    "DistinctVariants",
    "GPProposer",
    "HindsightProposer",
    "Observation",
    "PaperT5Proposer",
    "Proposal",
    "Proposer",
    "ProposerContext",
    "ProposerData",
    "ProposerFactory",
    "RandomGPMultiProposer",
    "RandomGPProposer",
    "RandomProposer",
    "RandomRefiner",
    "RefinementPair",
    "SampleSettings",
    "T5OnlyProposer",
    "T5Sampler",
    "TPEProposer",
    "TrainSettings",
    "Vocabulary",
    "accepts_init",
    "build_vocabulary",
    "draw_distinct",
    "full_script",
    "get_proposer",
    "hindsight_pairs",
    "iter_pairs",
    "longest_pair",
    "make_dataset",
    "model_format",
    "model_view",
    "needs_refinement_data",
    "prepare_data",
    "proposer_factory",
    "proposer_names",
    "read_pairs",
    "reads_program_view",
    "register_proposer",
    "shared_record",
    "shared_tokenizer_path",
    "site_distributions",
    "too_long_message",
    "unregister_proposer",
    "view_sites",
    "view_target",
    "view_text",
    "write_pairs",
    "write_vocabulary",
]

# The old names, kept for one release: (new name, the class).
_RENAMED = {
    "LearnedProposer": ("PaperT5Proposer", PaperT5Proposer),
    "LineageProposer": ("HindsightProposer", HindsightProposer),
    "T5Proposer": ("T5Sampler", T5Sampler),
}


def __getattr__(name: str) -> Any:
    if name not in _RENAMED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    new, found = _RENAMED[name]
    warnings.warn(f"deepphoenix.proposers.{name} is deprecated and goes in the next release; "
                  f"use deepphoenix.proposers.{new}", DeprecationWarning, stacklevel=2)
    return found
