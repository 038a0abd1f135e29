"""ToolRL's tool-call reward: format, correctness and length components, the paper's variants as a
registry of names, and adapters for TRL (`toolrl.rewards.trl`) and the CLI (`toolrl reward score`);
the rewards of multi-turn trajectories on BFCL's environments (`toolrl.rewards.multi_turn`).

    >>> from toolrl.rewards import score
    >>> gt = '<think> x </think>\\n<tool_call>\\n{"name": "f", "parameters": {"a": 1}}\\n</tool_call>'
    >>> score(gt, gt)
    RewardScores(total=4.0, format=1.0, correctness=3.0, length=0.0)

See docs/REWARDS.md for each variant's ranges and formula.

The names below are loaded from their modules when first used, not when the package is imported:
`toolrl.config` validates a variant name against `toolrl.rewards.registry`, and the scorer reads
`toolrl.config`, so a package that imported the scorer up front would import config from inside
config's own import (a cycle). Modules import config -> registry -> schedules, and scorer -> config.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the module of this package that defines it
_HOMES = {
    "GroundTruthError": "parsing",
    "parse_ground_truth": "parsing",
    "COMPONENTS": "registry",
    "MULTI_TURN_REWARDS": "registry",
    "MultiTurnReward": "registry",
    "get_multi_turn": "registry",
    "register_multi_turn": "registry",
    "TrajectoryScorer": "multi_turn",
    "TrajectoryScores": "multi_turn",
    "REFERENCE_VARIANTS": "registry",
    "VARIANTS": "registry",
    "UnknownVariant": "registry",
    "Variant": "registry",
    "get_variant": "registry",
    "register": "registry",
    "ToolsError": "schema",
    "RewardScores": "scorer",
    "Scorer": "scorer",
    "StepRanges": "scorer",
    "score": "scorer",
}

__all__ = [  # the keys of _HOMES (tests/test_imports.py holds them equal)
    "COMPONENTS", "MULTI_TURN_REWARDS", "REFERENCE_VARIANTS", "VARIANTS", "GroundTruthError", "MultiTurnReward",
    "RewardScores", "Scorer", "StepRanges", "ToolsError", "TrajectoryScorer", "TrajectoryScores", "UnknownVariant",
    "Variant", "get_multi_turn", "get_variant", "parse_ground_truth", "register", "register_multi_turn", "score",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'toolrl.rewards' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # once loaded, a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


if TYPE_CHECKING:  # for type checkers and editors: the names as plain imports
    from toolrl.rewards.multi_turn import TrajectoryScorer, TrajectoryScores
    from toolrl.rewards.parsing import GroundTruthError, parse_ground_truth
    from toolrl.rewards.registry import (
        COMPONENTS,
        MULTI_TURN_REWARDS,
        REFERENCE_VARIANTS,
        VARIANTS,
        MultiTurnReward,
        UnknownVariant,
        Variant,
        get_multi_turn,
        get_variant,
        register,
        register_multi_turn,
    )
    from toolrl.rewards.schema import ToolsError
    from toolrl.rewards.scorer import RewardScores, Scorer, StepRanges, score
