"""Proposers produce candidate edits. The seam is a small ask/tell protocol (`Proposer`,
made by a registered factory from a `ProposerContext`). The built-ins are compositions
(`Composition`, built as a `ComposedProposer`): drawers that make candidates
(`GrammarDrawer`: the grammar's refinements; `TPEDrawer`, `GPDrawer`: Optuna's samplers;
`T5Drawer`: the run's trained T5, with `PaperTraining` or `HindsightTraining`) and a
ranker that picks the batch (`AsDrawn`, `SurrogateRanker`). They are ``random``
(`RandomProposer`, the grammar's refinements), ``t5`` (`PaperT5Proposer`, the paper's
learned proposer), ``learned`` (`HindsightProposer`: a T5 that also learns from the run's
scored variants, ranked in one pool with the GP sampler's and the grammar's candidates),
``tpe`` and ``gp`` (Optuna's TPE and GP-BO over the sites), and the learned proposer's
ablations ``random-gp``, ``random-gp-multi`` and ``t5-only`` (the table is in
`_builtin`). `Refiner` is the grammar's refinement operator (not a proposer); it also
builds the refinement dataset. ``learned`` and ``t5-only`` read the *program view*
(`view_text`: each proposable site's name, value and domain, one line a site), so a long
model file costs what its sites cost; ``t5`` reads the whole source, as the paper's does.
Nothing here imports torch; the workers do.

`T5Sampler` is the worker-held T5 the T5 drawer samples (not a `Proposer`). The old names
`LearnedProposer`, `LineageProposer`, `T5Proposer` and `RandomRefiner` are deprecated
aliases, kept for one release: using one warns (`DeprecationWarning`) and names the new
name. (`RandomProposer` was the refinement operator; that is `Refiner` now.)"""

import warnings
from typing import Any

from deepphoenix.proposers._as_drawn import AsDrawn
from deepphoenix.proposers._builtin import (
    T5_SITES_CHANGED,
    GPProposer,
    HindsightProposer,
    PaperT5Proposer,
    RandomGPMultiProposer,
    RandomGPProposer,
    RandomProposer,
    T5OnlyProposer,
    TPEProposer,
)
from deepphoenix.proposers._composed_proposer import ComposedProposer
from deepphoenix.proposers._composition import Composition
from deepphoenix.proposers._dataset import (
    RefinementPair,
    iter_pairs,
    make_dataset,
    read_pairs,
    write_pairs,
)
from deepphoenix.proposers._distinct import draw_distinct
from deepphoenix.proposers._distinct_variants import DistinctVariants
from deepphoenix.proposers._drawer import Drawer
from deepphoenix.proposers._gp_drawer import GPDrawer
from deepphoenix.proposers._grammar_drawer import GrammarDrawer
from deepphoenix.proposers._hindsight_training import HindsightTraining, hindsight_pairs
from deepphoenix.proposers._paper_training import PaperTraining
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
from deepphoenix.proposers._ranker import Ranker
from deepphoenix.proposers._records import Proposal
from deepphoenix.proposers._refiner import Refiner
from deepphoenix.proposers._surrogate_ranker import SurrogateRanker
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
from deepphoenix.proposers._t5_drawer import T5Drawer
from deepphoenix.proposers._tpe import site_distributions
from deepphoenix.proposers._tpe_drawer import TPEDrawer
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
    "T5_SITES_CHANGED",
    "VIEW_VERSION",
    "AsDrawn",
    "ComposedProposer",
    "Composition",
    "DistinctVariants",
    "Drawer",
    "GPDrawer",
    "GPProposer",
    "GrammarDrawer",
    "HindsightProposer",
    "HindsightTraining",
    "Observation",
    "PaperT5Proposer",
    "PaperTraining",
    "Proposal",
    "Proposer",
    "ProposerContext",
    "ProposerData",
    "ProposerFactory",
    "RandomGPMultiProposer",
    "RandomGPProposer",
    "RandomProposer",
    "Ranker",
    "RefinementPair",
    "Refiner",
    "SampleSettings",
    "SurrogateRanker",
    "T5Drawer",
    "T5OnlyProposer",
    "T5Sampler",
    "TPEDrawer",
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
    "RandomRefiner": ("RandomProposer", RandomProposer),
}


def __getattr__(name: str) -> Any:
    if name not in _RENAMED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    new, found = _RENAMED[name]
    warnings.warn(f"deepphoenix.proposers.{name} is deprecated and goes in the next release; "
                  f"use deepphoenix.proposers.{new}", DeprecationWarning, stacklevel=2)
    return found
