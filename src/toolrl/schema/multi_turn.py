"""params.yaml `multi_turn`: which BFCL multi-turn scenarios train and which are held out for evaluation,
and the limits of the conversation loop in training.

`seed` and `eval_share` are read by the curate stage (the `bfcl_multi_turn` source trains on the
training scenarios only) and meant for the evaluate stage (it scores the held-out ones), through
`toolrl.multiturn.split`, so both sides of the split come from one function and one pair of params.
`limits` are the loop's limits (`toolrl.multiturn.loop.Limits`) in GRPO's multi-turn rollouts
(`grpo.task: multi_turn`); DVC tracks them for the GRPO stages only, the split for curate.
"""

from __future__ import annotations

from pydantic import Field

from toolrl.schema.base import Section


class LimitsParams(Section):
    """`toolrl.multiturn.loop.Limits`, field for field (docs/MULTI_TURN.md, limits and stop reasons)."""

    max_new_tokens: int = Field(default=256, ge=1, description=(
        "Tokens per model message; a message cut here is closed by the environment and read like any other "
        "(a cut call block is a parse failure the model is told about)."))
    max_steps_per_turn: int = Field(default=5, ge=1, description=(
        "Model messages per user turn; a turn still calling at its last allowed message stops the "
        "conversation (stop reason step_limit)."))
    max_calls: int = Field(default=20, ge=1, description=(
        "Tool calls per conversation; calls past it are not run and the conversation stops (call_limit)."))
    max_total_tokens: int = Field(default=8192, ge=2, description=(
        "Prompt + completion of one conversation, at most the model's context (SmolLM2: 8192; BFCL's "
        "openings are ~2.1-4.7k tokens, median ~3.5k); the conversation stops when it is full "
        "(length_limit)."))


class MultiTurnParams(Section):
    seed: int = Field(default=0, description=(
        "Seed of the scenario split: scenario groups are ranked by a hash of (seed, group) and the first ones "
        "are held out for evaluation."))
    eval_share: float = Field(default=0.5, gt=0, lt=1, description=(
        "Share of BFCL's 200 multi-turn scenarios held out for evaluation (each in all four categories). "
        "Half: 100 scenarios x 4 categories = 400 evaluation cases, about +/-5 points of 95 % interval overall "
        "and +/-10 per category (issue #18); the other half trains."))
    limits: LimitsParams = Field(default_factory=LimitsParams, description=(
        "The conversation loop's limits in multi-turn GRPO rollouts (grpo.task: multi_turn; grpo_trm too)."))
