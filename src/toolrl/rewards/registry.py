"""Named reward variants: each entry states how one ToolRL ablation differs from the default.

The reference scorer switched these with environment variables; here a variant is data, chosen by
name in params.yaml (`grpo.reward.variant`). The nine reference variants reproduce the reference
exactly (parity-tested on its vectors); the `schema_*` and `optimal_*` entries go beyond it and are
never the default. `register` adds a variant from Python without touching the scorer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from toolrl.rewards.schedules import CONSTANT, Anneal, LengthTarget, Range, Schedule, TwoStage

COMPONENTS = ("format", "correctness", "length")


@dataclass(frozen=True)
class Variant:
    """One reward design. Ranges are the defaults used when params leave them unset."""

    name: str
    summary: str
    format_range: Range = Range(0.0, 1.0)
    correctness_range: Range = Range(-3.0, 3.0)
    length_range: Range = Range(0.0, 1.0)
    format_schedule: Schedule = CONSTANT
    correctness_schedule: Schedule = CONSTANT
    # None: no length component (its score is 0 and TRL gets no length function).
    length: LengthTarget | None = None
    # "overlap": name and key lists score |A & B| / |A | B| (multisets); "exact": 1 if the lists are
    # equal in order, else 0 (the paper's fine-grained/strict ablation).
    lists: Literal["overlap", "exact"] = "overlap"
    # "graded": a matched call earns key overlap + one per equal value; "exact": one if the whole
    # call is equal, else nothing (the paper's intermediate ablation).
    calls: Literal["graded", "exact"] = "graded"
    # True: anything short of the exact ground truth gets the correctness minimum (coarse ablation).
    all_or_nothing: bool = False
    # "python": values equal under Python `==` (the reference: "1" != 1, true == 1); "schema": equal
    # after coercion to the parameter's declared type when the tools are given (toolrl.rewards.schema).
    values: Literal["python", "schema"] = "python"
    # "greedy": ground-truth calls take the best unused predicted call in order (the reference);
    # "optimal": the assignment maximising the total (Hungarian algorithm).
    assignment: Literal["greedy", "optimal"] = "greedy"
    # True for the variants that reproduce the reference scorer exactly.
    reference: bool = True


VARIANTS: dict[str, Variant] = {}


class UnknownVariant(ValueError):
    """A variant name that is not registered."""


def register(variant: Variant, *, replace: bool = False) -> Variant:
    if variant.name in VARIANTS and not replace:
        raise ValueError(f"reward variant {variant.name!r} is already registered (pass replace=True)")
    if variant.calls == "exact" and (variant.values != "python" or variant.assignment != "greedy"):
        raise ValueError(f"variant {variant.name!r}: exact per-call matching supports only python values, greedy")
    VARIANTS[variant.name] = variant
    return variant


def get_variant(name: str | Variant) -> Variant:
    if isinstance(name, Variant):
        return name
    try:
        return VARIANTS[name]
    except (KeyError, TypeError):
        raise UnknownVariant(
            f"unknown reward variant {name!r}: choose one of {', '.join(VARIANTS)} "
            "(grpo.reward.variant in params.yaml)"
        ) from None


# ---------------------------------------------------------------- the paper's variants (reference-exact)

register(Variant("default", "format in [0, 1] plus correctness in [-3, 3] (the paper's main setting)"))
register(Variant(
    "equal_max", "correctness scaled to [-1, 1], the same maximum as format",
    correctness_range=Range(-1.0, 1.0),
))
register(Variant(
    "two_stage", "correctness at a third of its scale until step 30, then full; format halves at step 30",
    format_schedule=TwoStage(switch_step=30, late_divisor=2.0),
    correctness_schedule=TwoStage(switch_step=30, early_divisor=3.0),
))
register(Variant(
    "dynamic_scale", "both ranges start at [-2, 2] and move linearly over 150 steps: format to [-1, 1], "
    "correctness to [-3, 3]",
    format_schedule=Anneal(start_min=-2.0, start_max=2.0, horizon=150.0, stop_min=-1.0),
    correctness_schedule=Anneal(start_min=-2.0, start_max=2.0, horizon=150.0),
))
register(Variant(
    "strict_match", "name and parameter-name lists score only when equal in order (fine-grained ablation)",
    lists="exact",
))
register(Variant(
    "intermediate", "a ground-truth call earns one point only when a predicted call equals it exactly",
    calls="exact",
))
register(Variant(
    "coarse", "correctness is the maximum for an exact match and the minimum otherwise",
    all_or_nothing=True,
))
register(Variant(
    "length", "adds a length reward: words inside <think> over 512, in [0, 1]",
    length=LengthTarget(start=512.0),
))
register(Variant(
    "dynamic_length", "length reward whose word target grows linearly from 384 (step 0) to 640 (step 105)",
    length=LengthTarget(start=384.0, end=640.0, horizon=105.0),
))

# ---------------------------------------------------------------- beyond the reference (off by default)

register(Variant(
    "schema_match", "default, with values compared after coercion to the declared parameter type "
    "(needs the example's tools; without them it equals default)",
    values="schema", reference=False,
))
register(Variant(
    "optimal_match", "default, with predicted calls assigned to ground-truth calls by the Hungarian "
    "algorithm instead of greedily in order",
    assignment="optimal", reference=False,
))
register(Variant(
    "schema_optimal_match", "schema_match and optimal_match together",
    values="schema", assignment="optimal", reference=False,
))

REFERENCE_VARIANTS = tuple(name for name, v in VARIANTS.items() if v.reference)

# ---------------------------------------------------------------- multi-turn rewards (trajectories)


@dataclass(frozen=True)
class MultiTurnReward:
    """Which signals score a multi-turn trajectory (`grpo.reward.multi_turn`).

    The outcome is BFCL's multi-turn checker on the finished conversation (max if it passes, else min);
    the dense terms are ToolRL's format per model message and correctness per user turn, with the ranges,
    schedules and matching of `grpo.reward.variant` (toolrl.rewards.multi_turn).
    """

    name: str
    summary: str
    outcome: bool
    dense: bool
    outcome_range: Range = Range(0.0, 1.0)


MULTI_TURN_REWARDS: dict[str, MultiTurnReward] = {}


def register_multi_turn(reward: MultiTurnReward, *, replace: bool = False) -> MultiTurnReward:
    if reward.name in MULTI_TURN_REWARDS and not replace:
        raise ValueError(f"multi-turn reward {reward.name!r} is already registered (pass replace=True)")
    if not (reward.outcome or reward.dense):
        raise ValueError(f"multi-turn reward {reward.name!r} scores nothing: set outcome, dense or both")
    MULTI_TURN_REWARDS[reward.name] = reward
    return reward


def get_multi_turn(name: str | MultiTurnReward) -> MultiTurnReward:
    if isinstance(name, MultiTurnReward):
        return name
    try:
        return MULTI_TURN_REWARDS[name]
    except (KeyError, TypeError):
        raise UnknownVariant(
            f"unknown multi-turn reward {name!r}: choose one of {', '.join(MULTI_TURN_REWARDS)} "
            "(grpo.reward.multi_turn in params.yaml)"
        ) from None


register_multi_turn(MultiTurnReward(
    "outcome", "BFCL's multi-turn checker on the finished trajectory: [0, 1], 1 when it passes",
    outcome=True, dense=False,
))
register_multi_turn(MultiTurnReward(
    "dense", "ToolRL's format (mean over model messages) and correctness (mean over user turns, the "
    "turn's calls against its ground-truth calls), ranges and matching from grpo.reward.variant",
    outcome=False, dense=True,
))
register_multi_turn(MultiTurnReward(
    "outcome_dense", "both: the checker's outcome in [0, 3] (as large as correctness's maximum) plus the "
    "dense format and correctness",
    outcome=True, dense=True, outcome_range=Range(0.0, 3.0),
))
