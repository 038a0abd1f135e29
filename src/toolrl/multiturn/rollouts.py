"""Multi-turn rollouts inside TRL's GRPOTrainer, through its `rollout_func` hook.

TRL 1.16's own multi-turn path (`tools=` / `environment_factory`) does not fit here: it reads tool
calls with the chat template's response parser (SmolLM2's ChatML template has none, and the ToolRL
`<tool_call>` JSON lines are not its format), renders results as `tool` messages, and serves one
user turn. Its `rollout_func(prompts, trainer)` hook does fit: TRL hands over the generation batch's
prompts (each already repeated `num_generations` times by its sampler, so one rollout per prompt
makes the groups) and takes back, per rollout, `prompt_ids`, `completion_ids`, `logprobs` and
`env_mask`. TRL then builds its loss mask as `completion_mask * env_mask`, so the environment's
tokens (tool results, the next user turn, chat-template glue) are in the sequence the policy is
scored on but carry no loss. Every other key is forwarded to the reward functions: here
`trajectory`, each rollout's `Trajectory.to_dict()`.

A dataset row's `prompt` is its BFCL case id (`dataset_rows`); the opening the model reads is built
by the loop from the case, so TRL's prompt column is only the key. `logprobs` is None: TRL uses the
sampling log-probs only for vLLM's importance-sampling correction, and here the trainer's model
generates with transformers, as on TRL's own transformers path (which also returns None).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from toolrl.end_of_turn import END_OF_TURN
from toolrl.multiturn.cases import MultiTurnCase
from toolrl.multiturn.loop import Limits, converse


def dataset_rows(cases: Iterable[MultiTurnCase]) -> list[dict[str, str]]:
    """GRPO dataset rows for these cases: the case id as TRL's prompt, and its category."""
    return [{"prompt": c.id, "case_id": c.id, "category": c.category} for c in cases]


def bfcl_rollout_func(cases: Iterable[MultiTurnCase], limits: Limits) -> Callable[[list[Any], Any], dict[str, Any]]:
    """A `rollout_func` for `GRPOTrainer(rollout_func=...)` over these cases (see the module doc)."""
    by_id = {c.id: c for c in cases}

    def rollout_func(prompts: list[Any], trainer: Any) -> dict[str, Any]:
        unknown = sorted({str(p) for p in prompts if not isinstance(p, str) or p not in by_id})
        if unknown:
            raise ValueError(f"multi-turn GRPO prompts must be BFCL case ids of the training cases "
                             f"(multiturn.rollouts.dataset_rows); unknown: {', '.join(unknown[:5])}")
        rollouts = converse([by_id[p] for p in prompts], _TrainerPolicy(trainer), limits)
        return {
            "prompt_ids": [r.prompt_ids for r in rollouts],
            "completion_ids": [r.completion_ids for r in rollouts],
            "logprobs": None,
            "env_mask": [r.env_mask for r in rollouts],
            "trajectory": [r.trajectory.to_dict() for r in rollouts],
        }

    return rollout_func


class _TrainerPolicy:
    """The trainer's current weights as an `HFPolicy` with TRL's sampling settings, unwrapped for
    generation the way TRL unwraps them for each batch (DDP, DeepSpeed, FSDP)."""

    def __init__(self, trainer: Any):
        if trainer.use_vllm or trainer.use_transformers_continuous_batching:
            raise ValueError("multi-turn rollouts generate with the trainer's model through transformers' generate; "
                             "set use_vllm and use_transformers_continuous_batching to false")
        self.trainer = trainer
        self.tokenizer = trainer.processing_class
        self.end_of_turn = self.tokenizer.convert_tokens_to_ids(END_OF_TURN)
        from toolrl.decode import PrefixCaches  # torch is imported where used, as below

        self.prefixes = PrefixCaches()  # one store per rollout batch: the weights do not change within it

    def continue_messages(self, sequences: list[list[int]], max_new_tokens: list[int]) -> list[Any]:
        import torch
        from trl.models import unwrap_model_for_generation

        from toolrl.multiturn.policy import HFPolicy

        t = self.trainer
        with (
            unwrap_model_for_generation(t.model_wrapped, t.accelerator, gather_deepspeed3_params=t.args.ds3_gather_for_generation,
                                        generation_kwargs=t.generation_kwargs,
                                        gradient_checkpointing_kwargs=t.args.gradient_checkpointing_kwargs) as model,
            torch.no_grad(),
            t._dist.summon_full_params(t.model_wrapped, recurse=False),
        ):
            # The shared-prefix trainer may generate with a bf16 copy of the policy, refreshed each step.
            model = t._rollout_weights(model) if hasattr(t, "_rollout_weights") else model
            policy = HFPolicy(model, self.tokenizer, generation_config=t.generation_config, prefixes=self.prefixes,
                              lookup=getattr(t, "lookup", None))
            return policy.continue_messages(sequences, max_new_tokens)
