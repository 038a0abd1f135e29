"""Shared-prefix GRPO: each group's prompt is computed once, and its completions attend to it.

In GRPO the G completions of a group share one prompt, and here the prompt (system prompt plus tool
schemas, ~550-650 tokens) is ~88 % of every sequence. TRL 1.16 runs every completion over its whole
prompt in each pass that scores completion tokens (the policy's forward and backward, the reference
model's forward, the old-policy log-probs), all through `_get_per_token_logps_and_entropies`. This
trainer overrides that one method (the idea of Prefix Grouper, arXiv 2506.05433; verl's
`use_prefix_grouper`):

1. the rows of the batch are grouped by their (unpadded) prompt tokens;
2. each prompt but its last token runs once, with the KV cache on and the LM head on one position
   only; the cache is repeated for the group's rows (`repeat_interleave` is differentiable, so the
   gradients of the G completions sum into the one prompt pass in backward);
3. the group's rows then run `[last prompt token, completion...]` against that cache through TRL's
   own fused LM head (`fused_lm_head=True`), which scores exactly the completion tokens as TRL does
   (and, on CPU too, only those: toolrl.training.fused_head).
   With `loss_rows_at_once`, they run that many at a time under `torch.utils.checkpoint`: each chunk's
   activations are dropped after its forward and recomputed in its backward, so a long multi-turn
   group holds the prompt's activations plus one chunk's instead of every row's.

Attention is causal, so a prompt token never sees a completion token: the prompt's keys and values
are the same in every row of the group, and computing them once changes no number but rounding
(tests/test_shared_prefix.py holds log-probs, loss and gradient equal to TRL's path). Positions of a
left-padded prompt start at 0 here and after the padding in TRL's path; rotary embeddings depend on
relative positions only, so that too changes rounding only.

Rollouts get the same treatment (`_generate_single_turn`), through toolrl.decode: each distinct
prompt is prefilled once (batch 1, no padding), and a lean decode loop of our own continues from a
preallocated cache holding every row (one column written per step, no concatenation), dropping a row
from the batch once it has emitted a stop token. It draws `generate`'s tokens (the same positions,
`generate`'s own logits processors, a seeded sample consuming the random stream as `generate` does),
greedy and sampled (tests/test_decode.py, and here against TRL's `generate` path). With lookup drafts
(`grpo.lookup_tokens`, default on: `decode.Lookup`, one pool of completions per trainer) each pass also
checks a few drafted tokens a row: greedy, still `generate`'s tokens; sampled, the same distribution
drawn with other random numbers (speculative sampling). Generation may
also run on a bf16 copy of the policy (`grpo.generation_dtype`), refreshed after each optimizer step;
the loss still scores the completions with the trained weights, as TRL does when vLLM generates in
bf16 on a GPU.

The trainer also hosts dynamic sampling (`grpo.dynamic_sampling`, toolrl.training.dynamic_sampling): a
step's groups without signal replaced by further generation passes (`_rollouts`, one pass, which
grpo_trm extends).

Off (`grpo.shared_prefix: false`) is TRL's own method, untouched. TRL's path is also taken where the
shared prefix does not apply: multimodal inputs, MoE auxiliary losses, and activation checkpointing
(re-running a layer in backward would append its keys to the cache a second time); and for rollouts,
vLLM or transformers' continuous batching, which manage their own caches, and a model the decode loop
does not cover (`toolrl.decode.supported`: sliding-window or non-attention layers).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint
from trl import GRPOTrainer
from trl.extras.profiling import profiling_context
from trl.models import unwrap_model_for_generation

from toolrl.decode import Lookup, decode, prompt_cache, supported
from toolrl.training import dynamic_sampling
from toolrl.training.common_prefix import repeated
from toolrl.training.fused_head import compact_lm_head

logger = logging.getLogger(__name__)


def prompt_groups(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> list[tuple[list[int], list[int]]]:
    """Rows that share one prompt, in order of first appearance: (unpadded prompt tokens, row indices)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for row, (ids, mask) in enumerate(zip(prompt_ids.tolist(), prompt_mask.tolist(), strict=True)):
        key = tuple(t for t, m in zip(ids, mask, strict=True) if m)
        groups.setdefault(key, []).append(row)
    return [(list(key), rows) for key, rows in groups.items()]


class SharedPrefixGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose log-prob passes and rollouts compute each group's prompt once (see the module doc)."""

    def __init__(self, *args: Any, shared_prefix: bool = True, generation_dtype: str = "float32",
                 loss_rows_at_once: int | None = None, dynamic_sampling: int = 0, lookup_tokens: int = 0,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        # One pool of completions for the whole run: a step's drafts come from recent steps' completions too.
        self.lookup = Lookup(lookup_tokens) if lookup_tokens else None
        self.loss_rows_at_once = loss_rows_at_once
        self.dynamic_sampling = dynamic_sampling
        self.shared_prefix = shared_prefix and not self.args.activation_checkpointing
        if shared_prefix and not self.shared_prefix:
            logger.warning("shared_prefix is off: activation checkpointing replays layers without their KV cache "
                           "(set gradient_checkpointing to false to compute each prompt once; for memory, "
                           "grpo.loss_rows_at_once recomputes rows, not the prompt)")
        self.generation_dtype = getattr(torch, generation_dtype)
        self._rollout_model: Any = None
        self._rollout_step = -1

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        if self.dynamic_sampling and self.model.training:
            return dynamic_sampling.fill(self, inputs, self.dynamic_sampling, self._rollouts)
        return self._rollouts(inputs)

    def _rollouts(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """One generation pass over `inputs`: TRL's generate, score and advantages. Subclasses extend this
        (grpo_trm adds its call term), so dynamic sampling's further passes are scored the same way."""
        return super()._generate_and_score_completions(inputs)

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None,
                                           compute_entropy=False, compute_aux_loss=False, **multimodal):
        if not self.shared_prefix or compute_aux_loss or any(v is not None for v in multimodal.values()):
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy, compute_aux_loss,
                **multimodal)
        batch_size = batch_size or input_ids.size(0)
        logps, entropies = [], []
        for start in range(0, input_ids.size(0), batch_size):  # TRL's chunking, kept for its memory bound
            chunk = slice(start, start + batch_size)
            lp, ent = self._shared_prefix_logps(model, input_ids[chunk], attention_mask[chunk], logits_to_keep,
                                                compute_entropy)
            logps.append(lp)
            entropies.append(ent)
        return torch.cat(logps), (torch.cat(entropies) if compute_entropy else None), None

    def _shared_prefix_logps(self, model, input_ids, attention_mask, logits_to_keep, compute_entropy):
        """Per-token log-probs (and entropies) of the completion tokens of one chunk of rows."""
        prompt_ids, prompt_mask = input_ids[:, :-logits_to_keep], attention_mask[:, :-logits_to_keep]
        completion_ids, completion_mask = input_ids[:, -logits_to_keep:], attention_mask[:, -logits_to_keep:]
        order, logps, entropies = [], [], []
        for prompt, rows in prompt_groups(prompt_ids, prompt_mask):
            index = torch.tensor(rows, device=input_ids.device)
            log_probs, entropy = self._group_logps(model, prompt, completion_ids[index], completion_mask[index])
            order.extend(rows)
            logps.append(log_probs)
            entropies.append(entropy if compute_entropy else None)
        # Back to the rows' own order (an index_select, so gradients flow back to each group's pass).
        inverse = torch.argsort(torch.tensor(order, device=input_ids.device))
        logps_out = torch.cat(logps)[inverse]
        entropy_out = torch.cat(entropies)[inverse] if compute_entropy else None
        return logps_out, entropy_out

    def _group_logps(self, model, prompt: list[int], completion_ids: torch.Tensor,
                     completion_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One prompt pass, then its rows' completions against the cached prompt (TRL's fused LM head):
        their per-token log-probs and entropies (None where the head computes none: the reference model)."""
        rows, device = completion_ids.size(0), completion_ids.device
        last = torch.full((rows, 1), prompt[-1], dtype=completion_ids.dtype, device=device)
        suffix = torch.cat([last, completion_ids], dim=1)  # (rows, 1 + C): the last prompt token predicts c_0
        suffix_mask = torch.cat([torch.ones_like(last), completion_mask.to(last.dtype)], dim=1)
        labels = suffix.masked_fill(suffix_mask == 0, -100)
        labels[:, 0] = -100
        mask = torch.cat([suffix_mask.new_ones(rows, len(prompt) - 1), suffix_mask], dim=1)

        def score(part: slice) -> tuple[torch.Tensor, torch.Tensor | None]:
            """These rows against the prompt; rebuilds their cache, so a recomputation runs it again."""
            cache = repeated(prefix, part.stop - part.start) if prefix is not None else None
            with compact_lm_head():  # the completion tokens only, not the padding after short ones
                out = model(input_ids=suffix[part], attention_mask=mask[part], past_key_values=cache,
                            labels=labels[part], fused_lm_head=True)
            return out.log_probs, out.entropy

        with self.accelerator.autocast():
            prefix = prompt_cache(model, prompt[:-1], device) if len(prompt) > 1 else None
            at_once = self.loss_rows_at_once or rows
            if at_once >= rows or not torch.is_grad_enabled():
                return score(slice(0, rows))
            parts = [checkpoint(score, slice(i, min(i + at_once, rows)), use_reentrant=False)
                     for i in range(0, rows, at_once)]
        entropies = [p[1] for p in parts]
        return torch.cat([p[0] for p in parts]), (torch.cat(entropies) if entropies[0] is not None else None)

    # ---------------------------------------------------------------- rollouts

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        plain = not (self.use_vllm or self.use_transformers_continuous_batching or images is not None
                     or multimodal_fields or has_tool_images)
        if not (self.shared_prefix and plain and min(len(p) for p in prompt_ids) >= 2
                and supported(self.accelerator.unwrap_model(self.model))):
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                 has_tool_images)
        device = self.accelerator.device
        with (
            profiling_context(self, "transformers.generate"),
            unwrap_model_for_generation(self.model_wrapped, self.accelerator,
                                        gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                                        generation_kwargs=self.generation_kwargs,
                                        gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs)
            as unwrapped,
            torch.no_grad(),
            self._dist.summon_full_params(self.model_wrapped, recurse=False),
        ):
            model = self._rollout_weights(unwrapped)
            before = (self.lookup.emitted, self.lookup.passes) if self.lookup else None
            completions = decode(model, prompt_ids, self.generation_config, device=device, lookup=self.lookup)
        if self.lookup and self.lookup.passes > before[1]:
            mode = "train" if self.model.training else "eval"
            self._metrics[mode]["rollout/lookup_tokens_per_pass"].append(
                (self.lookup.emitted - before[0]) / (self.lookup.passes - before[1]))
        return completions, None

    def _rollout_weights(self, unwrapped: Any) -> Any:
        """The model that generates: the policy itself, or its copy in `generation_dtype`, whose weights
        are refreshed once per optimizer step (the refresh time is logged as `rollout/weight_sync_s`).
        A PEFT policy generates as itself: its adapters are not merged into a copy."""
        if self.generation_dtype == unwrapped.dtype or self.is_peft_model_policy:
            return unwrapped
        if self._rollout_model is None:
            from transformers import AutoModelForCausalLM

            self._rollout_model = AutoModelForCausalLM.from_config(unwrapped.config, dtype=self.generation_dtype)
            self._rollout_model.to(unwrapped.device).eval()
            self._rollout_model.generation_config = unwrapped.generation_config
        if self._rollout_step != self.state.global_step:
            start = time.perf_counter()
            self._rollout_model.load_state_dict(unwrapped.state_dict())
            self._rollout_step = self.state.global_step
            mode = "train" if self.model.training else "eval"
            self._metrics[mode]["rollout/weight_sync_s"].append(time.perf_counter() - start)
        return self._rollout_model

    @property
    def is_peft_model_policy(self) -> bool:
        from accelerate.utils import is_peft_model

        return is_peft_model(self.accelerator.unwrap_model(self.model))
