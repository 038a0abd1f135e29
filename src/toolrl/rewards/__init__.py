"""ToolRL's tool-call reward: format, correctness and length components, the paper's variants as a
registry of names, and adapters for TRL (`toolrl.rewards.trl`) and the CLI (`toolrl reward score`).

    >>> from toolrl.rewards import score
    >>> gt = '<think> x </think>\\n<tool_call>\\n{"name": "f", "parameters": {"a": 1}}\\n</tool_call>'
    >>> score(gt, gt)
    RewardScores(total=4.0, format=1.0, correctness=3.0, length=0.0)

See docs/REWARDS.md for each variant's ranges and formula.
"""

from toolrl.rewards.parsing import GroundTruthError, parse_ground_truth
from toolrl.rewards.registry import (
    COMPONENTS,
    REFERENCE_VARIANTS,
    VARIANTS,
    UnknownVariant,
    Variant,
    get_variant,
    register,
)
from toolrl.rewards.schema import ToolsError
from toolrl.rewards.scorer import RewardScores, Scorer, StepRanges, score

__all__ = [
    "COMPONENTS",
    "REFERENCE_VARIANTS",
    "VARIANTS",
    "GroundTruthError",
    "RewardScores",
    "Scorer",
    "StepRanges",
    "ToolsError",
    "UnknownVariant",
    "Variant",
    "get_variant",
    "parse_ground_truth",
    "register",
    "score",
]
