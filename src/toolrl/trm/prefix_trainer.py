"""transformers' Trainer for the TRM, with each batch's common prompt computed once.

- `shared_prefix`: the loss and evaluation passes run through `toolrl.training.common_prefix` (rows
  that share a prompt compute it once; the same logits, loss and gradients as the stock forward up to
  rounding), then the Trainer's own `compute_loss_func` as before.
- `prompt_groups` (`trm.model.group_by_prompt`): training batches are drawn prompt by prompt (the
  records of one prompt consecutive, the prompts in a seeded random order each epoch) instead of record
  by record, so a batch holds a few prompts' records and its prompts are computed a few times rather
  than once per record. This changes which records share a batch (not the records, the epochs or the
  loss): the records of a prompt (a sampled call, the reference call, their hard negatives) are then
  compared in one step, as a reward model's pairs are. Off: the Trainer's random sampler.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from transformers import Trainer
from transformers.modeling_outputs import TokenClassifierOutput

from toolrl.training.common_prefix import shared_prefix_logits


class PromptGroupSampler(torch.utils.data.Sampler[int]):
    """Indices group by group (each group's in its own order), the groups shuffled per epoch from `seed`."""

    def __init__(self, groups: list[list[int]], seed: int = 0):
        self.groups, self.seed, self.epoch = groups, seed, 0

    def set_epoch(self, epoch: int) -> None:  # the Trainer calls it at each epoch
        self.epoch = epoch

    def __len__(self) -> int:
        return sum(len(g) for g in self.groups)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        for g in torch.randperm(len(self.groups), generator=generator).tolist():
            yield from self.groups[g]


def prompt_index_groups(records: list[dict[str, Any]]) -> list[list[int]]:
    """Indices of the records that share a prompt (chat messages), in order of first appearance."""
    import json

    groups: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault(json.dumps(r["prompt"], sort_keys=True), []).append(i)
    return list(groups.values())


class TrmTrainer(Trainer):
    # the TRM's loss (trainer.WeightedLastTokenLoss) is a per-batch mean: with gradient accumulation the
    # Trainer must divide it by the number of accumulated batches, which it skips for a compute_loss_func
    # unless told (single process; the stock multi-process token averaging is not reproduced here)
    loss_is_scaled_for_ga = False

    def __init__(self, *args: Any, shared_prefix: bool = True, prompt_groups: list[list[int]] | None = None,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.compute_loss_func is None:
            raise ValueError("TrmTrainer needs compute_loss_func (the TRM's loss at the labelled positions)")
        self.shared_prefix, self.prompt_groups = shared_prefix, prompt_groups

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        if not self.shared_prefix or "labels" not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        if set(inputs) - {"input_ids", "attention_mask"}:
            raise ValueError(f"trm.model.shared_prefix reads input_ids and attention_mask only, got {sorted(inputs)}")
        outputs = TokenClassifierOutput(logits=shared_prefix_logits(model, inputs["input_ids"],
                                                                    inputs["attention_mask"]))
        loss = self.compute_loss_func(outputs, labels, num_items_in_batch=num_items_in_batch)
        return (loss, outputs) if return_outputs else loss

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        if self.prompt_groups is None:
            return super()._get_train_sampler(train_dataset)
        return PromptGroupSampler(self.prompt_groups, seed=self.args.seed)
