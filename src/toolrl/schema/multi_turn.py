"""params.yaml `multi_turn`: which BFCL multi-turn scenarios train and which are held out for evaluation.

Read by the curate stage (the `bfcl_multi_turn` source trains on the training scenarios only) and
meant for the evaluate stage (it scores the held-out ones), through `toolrl.multiturn.split`, so
both sides of the split come from one function and one pair of params.
"""

from __future__ import annotations

from pydantic import Field

from toolrl.schema.base import Section


class MultiTurnParams(Section):
    seed: int = Field(default=0, description=(
        "Seed of the scenario split: scenario groups are ranked by a hash of (seed, group) and the first ones "
        "are held out for evaluation."))
    eval_share: float = Field(default=0.5, gt=0, lt=1, description=(
        "Share of BFCL's 200 multi-turn scenarios held out for evaluation (each in all four categories). "
        "Half: 100 scenarios x 4 categories = 400 evaluation cases, about +/-5 points of 95 % interval overall "
        "and +/-10 per category (issue #18); the other half trains."))
