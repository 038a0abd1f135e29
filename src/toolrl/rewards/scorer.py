"""Scoring one completion: `score(...)` for a single call, `Scorer` to score many with one variant.

total = w_format * format + w_correctness * correctness + w_length * length, each component in its
variant's range at the given step (weights default to 1, which is the reference's plain sum).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from toolrl.config import ConfigError, RewardParams
from toolrl.formats import assistant_text
from toolrl.rewards.components import correctness_reward, format_ok, length_reward
from toolrl.rewards.parsing import parse_ground_truth
from toolrl.rewards.registry import COMPONENTS, Variant, get_variant
from toolrl.rewards.schedules import Range
from toolrl.rewards.schema import tool_properties


class RewardScores(NamedTuple):
    total: float
    format: float
    correctness: float
    length: float


_new_scores = tuple.__new__


@dataclass(frozen=True, slots=True)
class StepRanges:
    """Each component's range at one step; `length` is None for variants without a length reward."""

    format: Range
    correctness: Range
    length: Range | None
    length_words: float

    def total_bounds(self, weights: tuple[float, float, float]) -> tuple[float, float]:
        """Lowest and highest possible total. Correctness can also be 0 (no call in the ground truth)."""
        c = self.correctness
        parts = [
            (self.format.min, self.format.max),
            (min(c.min, 0.0), max(c.max, 0.0)),
            (self.length.min, self.length.max) if self.length else (0.0, 0.0),
        ]
        lo = hi = 0.0
        for w, (a, b) in zip(weights, parts, strict=True):
            lo += min(w * a, w * b)
            hi += max(w * a, w * b)
        return lo, hi


class Scorer:
    """One variant with its resolved ranges and weights; call it to score a completion."""

    def __init__(self, variant: str | Variant | None = None, params: RewardParams | None = None):
        params = params or RewardParams()
        self.variant = get_variant(variant if variant is not None else params.variant)
        v = self.variant
        self.base = {
            "format": _resolve("format", params, v.format_range),
            "correctness": _resolve("correctness", params, v.correctness_range),
            "length": _resolve("length", params, v.length_range),
        }
        w = params.weights
        self.weights = tuple(float(w.get(c, 1.0)) for c in COMPONENTS)
        self._unweighted = self.weights == (1.0, 1.0, 1.0)
        self._ranges: dict[int, StepRanges] = {}

    @property
    def components(self) -> tuple[str, ...]:
        """The components this variant scores (length only for length variants)."""
        return COMPONENTS if self.variant.length is not None else COMPONENTS[:2]

    def ranges(self, step: int) -> StepRanges:
        r = self._ranges.get(step)
        if r is None:
            if not isinstance(step, int) or step < 0:
                raise ValueError(f"step must be a non-negative integer (the trainer's global step), got {step!r}")
            v = self.variant
            r = StepRanges(
                v.format_schedule(self.base["format"], step),
                v.correctness_schedule(self.base["correctness"], step),
                self.base["length"] if v.length is not None else None,
                v.length.words(step) if v.length is not None else 0.0,
            )
            if len(self._ranges) > 4096:  # steps only grow during training: keep the cache small
                self._ranges.clear()
            self._ranges[step] = r
        return r

    def bounds(self, step: int = 0) -> tuple[float, float]:
        """The lowest and highest total this scorer can return at `step`."""
        return self.ranges(step).total_bounds(self.weights)

    def __call__(self, completion: Any, ground_truth: str, step: int = 0, tools: Any = None) -> RewardScores:
        """Score one completion. Raises GroundTruthError for an unusable ground truth, ToolsError for
        unreadable tools (schema variants only), never for anything in the completion."""
        text = (completion if type(completion) is str else assistant_text(completion)).strip()
        gt = parse_ground_truth(ground_truth)
        r = self._ranges.get(step) or self.ranges(step)
        v = self.variant
        fmt = r.format.max if format_ok(text, gt.kind) else r.format.min
        props = tool_properties(tools) if tools is not None and v.values == "schema" else None
        cor = correctness_reward(text, gt, r.correctness, v, props)
        length = length_reward(text, r.length, r.length_words) if r.length is not None else 0.0
        if self._unweighted:
            total = fmt + cor + length
        else:
            wf, wc, wl = self.weights
            total = wf * fmt + wc * cor + wl * length
        return _new_scores(RewardScores, (total, fmt, cor, length))  # skips NamedTuple's Python __new__


def _resolve(part: str, params: RewardParams, default: Range) -> Range:
    lo, hi = getattr(params, f"{part}_min"), getattr(params, f"{part}_max")
    rng = Range(default.min if lo is None else float(lo), default.max if hi is None else float(hi))
    if rng.min > rng.max:
        raise ConfigError(
            f"grpo.reward.{part}_min ({rng.min}) is above {part}_max ({rng.max}) once the variant's "
            "defaults are filled in: set both"
        )
    return rng


_SCORERS: dict[tuple[str, str], Scorer] = {}


def score(
    completion: Any,
    ground_truth: str,
    variant: str | None = None,
    step: int = 0,
    params: RewardParams | None = None,
    tools: Any = None,
) -> RewardScores:
    """Score one completion against its ground truth with a ToolRL reward variant.

    Args:
        completion: the assistant's text, or chat messages (read by `formats.assistant_text`: the
            assistant messages' contents, joined); surrounding whitespace is ignored.
        ground_truth: the ToolRL ground-truth string (`<think>..</think>` then a `<tool_call>` block
            of `{"name", "parameters"}` JSON lines and/or a `<response>`).
        variant: a registered variant name; None takes `params.variant` ("default" without params).
        step: the training step that drives the variant's schedules (the trainer's global step).
        params: ranges and weights (`grpo.reward` of params.yaml); None: the variant's defaults.
        tools: the example's tools (list of tool objects or its JSON), read by the `schema_*` variants.

    Returns:
        RewardScores(total, format, correctness, length).

    Raises:
        GroundTruthError: the ground truth cannot be parsed. UnknownVariant: no such variant.
    """
    key = (variant or (params.variant if params else "default"), params.model_dump_json() if params else "")
    scorer = _SCORERS.get(key)
    if scorer is None:
        scorer = _SCORERS[key] = Scorer(key[0], params)
        if len(_SCORERS) > 256:
            _SCORERS.clear()
            _SCORERS[key] = scorer
    return scorer(completion, ground_truth, step, tools)
