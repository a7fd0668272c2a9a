"""Runs: the self-reprogramming loop, its presets and search strategies. The loop drives
proposers and the evaluator and records everything in the run database."""

from deepphoenix.search._config import PRESETS, RunConfig, preset
from deepphoenix.search._loop import Event, Run, RunSummary, derive_seed, load_seed_text
from deepphoenix.search._strategy import (
    BestOfN,
    Greedy,
    Scored,
    Strategy,
    get_strategy,
    strategy_names,
)

__all__ = [
    "PRESETS",
    "BestOfN",
    "Event",
    "Greedy",
    "Run",
    "RunConfig",
    "RunSummary",
    "Scored",
    "Strategy",
    "derive_seed",
    "get_strategy",
    "load_seed_text",
    "preset",
    "strategy_names",
]
