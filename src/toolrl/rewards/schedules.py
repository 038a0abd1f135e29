"""Reward ranges and how they move with the training step.

A component's reward lies in a `Range` [min, max]. A schedule maps the configured range and the
trainer's global step to the range used at that step. The constants of the paper's schedules (30
steps, 150 steps, the +-2 starting scale, the 384 -> 640 word target) are fields with the paper's
values as defaults, so a registry entry states them once and a new variant can pick others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Range:
    min: float
    max: float

    def scaled(self, divisor: float) -> Range:
        return Range(self.min / divisor, self.max / divisor)


class Schedule(Protocol):
    def __call__(self, base: Range, step: int) -> Range: ...


@dataclass(frozen=True, slots=True)
class Constant:
    """The configured range at every step."""

    def __call__(self, base: Range, step: int) -> Range:
        return base


@dataclass(frozen=True, slots=True)
class TwoStage:
    """The configured range divided by `early_divisor` before `switch_step`, by `late_divisor` from it on.

    The paper's two-stage ablation: correctness starts at a third of its scale and jumps to full
    scale at step 30, while format halves at step 30.
    """

    switch_step: int = 30
    early_divisor: float = 1.0
    late_divisor: float = 1.0

    def __call__(self, base: Range, step: int) -> Range:
        divisor = self.early_divisor if step < self.switch_step else self.late_divisor
        return base if divisor == 1.0 else base.scaled(divisor)


@dataclass(frozen=True, slots=True)
class Anneal:
    """A range that starts at [start_min, start_max] and moves linearly towards the configured range,
    covering the distance in `horizon` steps, and never moves past [stop_min, stop_max].

    `stop_*` None means the configured value. The paper's dynamic scale starts both components at
    [-2, 2]: format shrinks towards [0, 1] (its minimum stops at -1), correctness widens to [-3, 3].
    """

    start_min: float = -2.0
    start_max: float = 2.0
    horizon: float = 150.0
    stop_min: float | None = None
    stop_max: float | None = None

    def __call__(self, base: Range, step: int) -> Range:
        hi = self.start_max + (base.max - self.start_max) * step / self.horizon
        lo = self.start_min + (base.min - self.start_min) * step / self.horizon
        return Range(
            _stop(lo, self.start_min, base.min if self.stop_min is None else self.stop_min),
            _stop(hi, self.start_max, base.max if self.stop_max is None else self.stop_max),
        )


def _stop(value: float, start: float, stop: float) -> float:
    """Clamp `value`, moving from `start`, so that it does not pass `stop`."""
    return max(value, stop) if start > stop else min(value, stop)


@dataclass(frozen=True, slots=True)
class LengthTarget:
    """How many words inside `<think>` earn the full length reward at a step.

    Fixed at `start` when `end` is None; otherwise linear from `start` (step 0) to `end` (step
    `horizon`) and onwards at the same slope, as the paper's dynamic length schedule does.
    """

    start: float = 512.0
    end: float | None = None
    horizon: float = 105.0

    def __post_init__(self) -> None:
        if self.start <= 0 or (self.end is not None and self.end <= 0) or self.horizon <= 0:
            raise ValueError(f"length target needs positive word counts and horizon, got {self}")

    def words(self, step: int) -> float:
        if self.end is None:
            return self.start
        return (self.end - self.start) * step / self.horizon + self.start


CONSTANT = Constant()
