"""Rewards of a multi-turn trajectory on BFCL's executable environments (`grpo.reward.multi_turn`).

- **outcome**: BFCL's multi-turn checker (`toolrl.evaluation.multi_turn.grade_trajectory`) on the
  finished conversation: the outcome range's max when it passes, its min otherwise (a checker crash
  included: counted in `checker_errors`, not raised).
- **format**: ToolRL's format check on every model message, averaged over the messages. A message is
  held to the layout of what it should be: a calling message to `<think>..</think>\\n<tool_call>..</tool_call>`
  (a trailing `<response>` allowed, ToolRL's "both"), the message that ends a turn to
  `<think>..</think>\\n<response>..</response>`; in a turn whose ground truth has no call (miss_func,
  miss_param: the model should ask for what is missing) every message to the response layout, as
  ToolRL's format asks for a response when the ground truth has no call.
- **correctness**: ToolRL's correctness per user turn, averaged over the turns whose ground truth has
  calls: all the calls the model made in the turn, over all its messages, as one call block against the
  turn's ground-truth calls (the single-turn `correctness_reward` with the variant's matching). Per
  turn, not per message, because the ground truth is per turn and a model may rightly spread a turn's
  calls over several messages (`cd`, read the listing, then `mv`). A turn the model made no call in, or
  never reached, scores the minimum. Turns without ground-truth calls are left to the format term (ToolRL
  gives them correctness 0; averaging those zeros in would make the best score differ between cases).

total = w_outcome * outcome + w_format * format + w_correctness * correctness (`grpo.reward.weights`,
default 1 each); the terms the chosen reward leaves out are 0. Ranges, schedules and matching
(strict, intermediate, coarse, schema, optimal) come from `grpo.reward.variant`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from toolrl.config import ConfigError, RewardParams
from toolrl.formats import CALL_CLOSE, CALL_OPEN, ToolCall, ground_truth
from toolrl.multiturn.answers import case_by_id, ground_truth_calls
from toolrl.multiturn.cases import MultiTurnCase
from toolrl.multiturn.trajectory import Trajectory
from toolrl.rewards.components import correctness_reward, format_ok
from toolrl.rewards.parsing import parse_ground_truth
from toolrl.rewards.registry import MultiTurnReward, get_multi_turn
from toolrl.rewards.schedules import Range
from toolrl.rewards.schema import tool_properties
from toolrl.rewards.scorer import Scorer, StepRanges

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrajectoryScores:
    total: float
    outcome: float
    format: float
    correctness: float
    # the checker's error category when the outcome was graded and failed (records.ERROR_CATEGORIES)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def expected_kind(turn_has_calls: bool, last: bool, made_calls: bool) -> str:
    """The layout one model message is held to: "call" or "response" (see the module doc)."""
    if not turn_has_calls or (last and not made_calls):
        return "response"
    return "call"


def message_format(text: str, kind: str, rng: Range) -> float:
    text = text.strip()
    ok = format_ok(text, kind) or (kind == "call" and format_ok(text, "both"))
    return rng.max if ok else rng.min


def _block(calls: list[ToolCall]) -> str:
    """A turn's calls as one ToolRL call block, the text the single-turn correctness reads."""
    return CALL_OPEN + "\n" + "\n".join(c.to_json() for c in calls) + "\n" + CALL_CLOSE if calls else ""


def dense_scores(
    trajectory: Trajectory, case: MultiTurnCase, ranges: StepRanges, scorer: Scorer
) -> tuple[float, float]:
    """(format, correctness) of a trajectory: the mean over model messages and over the case's turns."""
    variant = scorer.variant
    truth = ground_truth_calls(case)
    tools = None
    if variant.values == "schema":
        from toolrl.multiturn.dialogue import tools_of

        functions = case.functions + [f for fs in case.added_functions.values() for f in fs]
        tools = tool_properties(tools_of(functions))
    formats, correct = [], []
    for i, gt_calls in enumerate(truth):
        turn = trajectory.turns[i] if i < len(trajectory.turns) else None
        steps = turn.steps if turn else []
        for j, step in enumerate(steps):
            kind = expected_kind(bool(gt_calls), j == len(steps) - 1, bool(step.calls))
            formats.append(message_format(step.text, kind, ranges.format))
        if not gt_calls:
            continue
        gt = parse_ground_truth(ground_truth(None, gt_calls, None))
        made = [c for step in steps for c in step.calls]
        correct.append(correctness_reward(_block(made), gt, ranges.correctness, variant, tools))
    fmt = sum(formats) / len(formats) if formats else ranges.format.min
    return fmt, sum(correct) / len(correct) if correct else 0.0


class TrajectoryScorer:
    """One multi-turn reward with its resolved ranges and weights; call it to score a trajectory.

    `cases` finds a trajectory's case by id (default: BFCL's data, `answers.case_by_id`).
    """

    def __init__(
        self,
        reward: str | MultiTurnReward | None = None,
        params: RewardParams | None = None,
        cases: Callable[[str], MultiTurnCase] | None = None,
    ):
        params = params or RewardParams()
        self.reward = get_multi_turn(reward if reward is not None else params.multi_turn)
        self.scorer = Scorer(params=params)  # the ToolRL variant: ranges, schedules, matching, weights
        if self.reward.dense and self.scorer.variant.length is not None:
            raise ConfigError(f"grpo.reward.variant {self.scorer.variant.name!r} has a length reward, which the "
                              "multi-turn dense reward does not score: choose a variant without one")
        d = self.reward.outcome_range
        self.outcome_range = Range(d.min if params.outcome_min is None else float(params.outcome_min),
                                   d.max if params.outcome_max is None else float(params.outcome_max))
        if self.outcome_range.min > self.outcome_range.max:
            raise ConfigError(f"grpo.reward.outcome_min ({self.outcome_range.min}) is above outcome_max "
                              f"({self.outcome_range.max}) once the reward's defaults are filled in: set both")
        self.outcome_weight = float(params.weights.get("outcome", 1.0))
        self.cases = cases or case_by_id
        self.checker_errors = 0
        self.graded = 0

    @property
    def components(self) -> tuple[str, ...]:
        """The terms this reward scores, in TRL's order."""
        return (("outcome",) if self.reward.outcome else ()) + (("format", "correctness") if self.reward.dense else ())

    def weight(self, component: str) -> float:
        return self.outcome_weight if component == "outcome" else self.scorer.weights[("format", "correctness").index(component)]

    def __call__(self, trajectory: Trajectory | dict[str, Any], step: int = 0) -> TrajectoryScores:
        """Score one trajectory (or its dict). Raises ValueError for an unknown case id or a record that
        is not a trajectory of its case; never for what the model did."""
        if isinstance(trajectory, dict):
            trajectory = Trajectory.from_dict(trajectory)
        case = self.cases(trajectory.case_id)
        outcome = fmt = cor = 0.0
        error = None
        if self.reward.outcome:
            from toolrl.evaluation.multi_turn import grade_trajectory

            grade = grade_trajectory(case, trajectory)
            self.graded += grade.checked
            if grade.error == "checker_error":
                self.checker_errors += 1
                log.warning("BFCL's multi-turn checker raised on %s (outcome: the minimum): %s", case.id, grade.detail)
            outcome = self.outcome_range.max if grade.correct else self.outcome_range.min
            error = grade.error
        elif len(trajectory.turns) > len(case.ground_truth):
            raise ValueError(f"trajectory of {case.id} has {len(trajectory.turns)} turns; the case has "
                             f"{len(case.ground_truth)}")
        if self.reward.dense:
            fmt, cor = dense_scores(trajectory, case, self.scorer.ranges(step), self.scorer)
        total = sum(self.weight(c) * v for c, v in zip(("outcome", "format", "correctness"), (outcome, fmt, cor),
                                                         strict=True) if c in self.components)
        return TrajectoryScores(total, outcome, fmt, cor, error)
