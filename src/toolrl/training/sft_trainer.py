"""TRL's SFTTrainer with two savings that change no number but rounding, both measured on CPU
(docs/BENCHMARKS.md, "SFT step"):

- the fused LM head scores the completion tokens only (toolrl.training.fused_head), not every prompt
  position as TRL does off CUDA: half of an SFT step on 2 CPU cores;
- right-padded batches run causal attention without a padding mask (toolrl.training.right_padding).

Same loss and gradient as the stock SFTTrainer (tests/test_sft_trainer.py).
"""

from __future__ import annotations

from typing import Any

from trl import SFTTrainer

from toolrl.training.fused_head import compact_lm_head
from toolrl.training.right_padding import causal_without_right_padding_mask


class LeanSFTTrainer(SFTTrainer):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        causal_without_right_padding_mask(self.model)

    def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        with compact_lm_head():
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
