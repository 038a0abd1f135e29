"""The reward as TRL reward functions: one per component, so GRPOTrainer logs each component's mean
(`rewards/format_reward/mean`, `rewards/correctness_reward/mean`, `rewards/length_reward/mean`).

    from toolrl.rewards.trl import reward_functions, reward_weights
    trainer = GRPOTrainer(..., reward_funcs=reward_functions(params.grpo.reward),
                          args=GRPOConfig(..., reward_weights=reward_weights(params.grpo.reward)))

TRL (1.16, `GRPOTrainer._calculate_rewards`) calls each function with `prompts`, `completions`,
`completion_ids`, every other dataset column as a list (here `ground_truth` and, for the schema
variants, `tools`), and `trainer_state`, whose `global_step` drives the variant's schedules. The
components of one batch are scored once and shared: the second and third functions read the first's
results. The weights go to TRL (`reward_weights`), so the logged component means stay unweighted.
This module does not import TRL: the functions are plain callables.
"""

from __future__ import annotations

from typing import Any

from toolrl.config import RewardParams
from toolrl.formats import assistant_text
from toolrl.rewards.scorer import RewardScores, Scorer


class BatchScorer:
    """Scores a batch once per (step, completions, ground truths) and hands out its components."""

    def __init__(self, params: RewardParams | None = None):
        self.scorer = Scorer(params=params)
        self._key: tuple | None = None
        self._scores: list[RewardScores] = []

    def scores(
        self,
        completions: list[Any],
        ground_truth: list[str] | None,
        step: int,
        tools: list[Any] | None = None,
    ) -> list[RewardScores]:
        if ground_truth is None:
            raise ValueError(
                "the reward needs a `ground_truth` dataset column (the curated records' RL view); "
                "the dataset passed to GRPOTrainer has none"
            )
        if len(ground_truth) != len(completions):
            raise ValueError(f"{len(completions)} completions but {len(ground_truth)} ground truths")
        texts = tuple(assistant_text(c) for c in completions)
        key = (step, texts, tuple(ground_truth), None if tools is None else id(tools))
        if key != self._key:
            tools_list = tools if tools is not None else [None] * len(texts)
            self._scores = [
                self.scorer(t, g, step, tl) for t, g, tl in zip(texts, ground_truth, tools_list, strict=True)
            ]
            self._key = key
        return self._scores


class ComponentReward:
    """A TRL reward function returning one component of the ToolRL reward."""

    def __init__(self, batch: BatchScorer, component: str):
        self.batch = batch
        self.component = component
        self.__name__ = f"{component}_reward"  # TRL names the logged metric after it

    def __call__(
        self,
        prompts: list[Any] | None = None,
        completions: list[Any] | None = None,
        ground_truth: list[str] | None = None,
        trainer_state: Any = None,
        tools: list[Any] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        step = int(getattr(trainer_state, "global_step", 0) or 0)
        scores = self.batch.scores(completions or [], ground_truth, step, tools)
        return [getattr(s, self.component) for s in scores]

    def __repr__(self) -> str:
        return f"<{self.__name__} ({self.batch.scorer.variant.name})>"


def reward_functions(params: RewardParams | None = None) -> list[ComponentReward]:
    """One TRL reward function per component of `params.variant` (format, correctness, and length for
    the length variants), sharing one scoring pass per batch."""
    batch = BatchScorer(params)
    return [ComponentReward(batch, c) for c in batch.scorer.components]


def reward_weights(params: RewardParams | None = None) -> list[float]:
    """`GRPOConfig.reward_weights` matching `reward_functions(params)`, from `params.weights`."""
    scorer = Scorer(params=params)
    weights = dict(zip(("format", "correctness", "length"), scorer.weights, strict=True))
    return [weights[c] for c in scorer.components]


# ---------------------------------------------------------------- multi-turn trajectories


class TrajectoryBatch:
    """Scores one batch of trajectories once and hands out its components (the checker runs once per
    trajectory, not once per reward function)."""

    def __init__(self, params: RewardParams | None = None, cases: Any = None):
        from toolrl.rewards.multi_turn import TrajectoryScorer

        self.scorer = TrajectoryScorer(params=params, cases=cases)
        self._batch: Any = None  # the list TRL passed last: held, so its id cannot be reused
        self._step = -1
        self._scores: list = []

    def scores(self, trajectory: list[Any] | None, step: int, log_metric: Any = None) -> list:
        if trajectory is None:
            raise ValueError(
                "the multi-turn reward needs a `trajectory` field (a list of Trajectory dicts, one per "
                "completion) from the rollout function; TRL passed none"
            )
        if trajectory is not self._batch or step != self._step:
            crashed_before = self.scorer.checker_errors
            self._scores = [self.scorer(t, step) for t in trajectory]
            self._batch, self._step = trajectory, step
            crashed = self.scorer.checker_errors - crashed_before
            if log_metric is not None and self.scorer.reward.outcome:  # TRL's per-step metric logger
                log_metric("multi_turn/checker_errors", float(crashed))
            if self.scorer.reward.outcome and trajectory and crashed == len(trajectory):
                from toolrl.evaluation.bfcl import CheckerBroken

                raise CheckerBroken(
                    f"BFCL's multi-turn checker raised on every one of the {len(trajectory)} trajectories of this "
                    "batch (see the warnings above): the checker is broken, not the policy. Check the installed "
                    "bfcl-eval (`pip install --no-deps --force-reinstall bfcl-eval==2026.3.23`).")
        return self._scores


class TrajectoryReward:
    """A TRL reward function returning one component of the multi-turn reward."""

    def __init__(self, batch: TrajectoryBatch, component: str):
        self.batch = batch
        self.component = component
        self.__name__ = f"{component}_reward"

    def __call__(self, prompts: list[Any] | None = None, completions: list[Any] | None = None,
                 trajectory: list[Any] | None = None, trainer_state: Any = None, log_metric: Any = None,
                 **kwargs: Any) -> list[float]:
        step = int(getattr(trainer_state, "global_step", 0) or 0)
        return [getattr(s, self.component) for s in self.batch.scores(trajectory, step, log_metric)]

    def __repr__(self) -> str:
        return f"<{self.__name__} (multi-turn {self.batch.scorer.reward.name})>"


def multi_turn_reward_functions(params: RewardParams | None = None, cases: Any = None) -> list[TrajectoryReward]:
    """One TRL reward function per term of `params.multi_turn` (outcome; format, correctness), reading the
    `trajectory` field the rollout function returns; `cases` finds a case by id (default: BFCL's data)."""
    batch = TrajectoryBatch(params, cases)
    return [TrajectoryReward(batch, c) for c in batch.scorer.components]


def multi_turn_reward_weights(params: RewardParams | None = None) -> list[float]:
    """`GRPOConfig.reward_weights` matching `multi_turn_reward_functions(params)`."""
    from toolrl.rewards.multi_turn import TrajectoryScorer

    scorer = TrajectoryScorer(params=params)
    return [scorer.weight(c) for c in scorer.components]
