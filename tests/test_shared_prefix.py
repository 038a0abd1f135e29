"""Shared-prefix GRPO computes what TRL's own path computes: per-token log-probs, entropies, the loss
and the gradient, in fp32 to a relative 1e-5, on one batch scored both ways by the same trainer.

The batch is what reaches TRL's loss: two groups whose prompts differ in length (so TRL left-pads
one), completions of different lengths (right padding), rows shuffled as TRL shuffles them, and both
(B,) advantages and grpo_trm's (B, T) ones."""

from __future__ import annotations

import pytest
import torch

from toolrl import formats

TOOLS = [{"name": "get_weather", "description": "Weather in a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
QUESTIONS = ["Weather in Paris?", "What is the weather like in Lima today, and should I take an umbrella with me?"]


def reward_zero(completions, **kwargs):
    return [0.0] * len(completions)


def _trainer(tiny_model_dir, tmp_path, lora: bool):
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import GRPOConfig

    from toolrl.training.shared_prefix import SharedPrefixGRPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    prompts = [formats.prompt_messages(TOOLS, [{"role": "user", "content": q}]) for q in QUESTIONS]
    args = GRPOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=6, num_generations=3,
                      max_completion_length=8, beta=0.04, bf16=False, report_to=[],
                      use_cpu=not torch.cuda.is_available(),  # bench/grpo_gpu.py runs these tests on a GPU
                      activation_checkpointing=False,  # as the stage sets it (TRL's default is on)
                      model_init_kwargs={"dtype": "float32"})
    peft = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM") if lora else None
    trainer = SharedPrefixGRPOTrainer(model=str(tiny_model_dir), reward_funcs=reward_zero, args=args,
                                      train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
                                      processing_class=tokenizer, peft_config=peft)
    assert trainer.shared_prefix  # on by default, as the stage builds it
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop, read by TRL's loss
    # tiny-random's weights are so small that its next-token distribution barely depends on the context,
    # and a wrong context would hide in the rounding. Larger weights make every token matter; LoRA's B
    # starts at zero, so it too is moved, and the adapters take part in the maths being compared.
    torch.manual_seed(1)
    for name, p in trainer.model.named_parameters():
        if p.dim() == 2 and ("lora_B" in name or not lora):
            p.data.normal_(0, 0.1)
    return trainer, tokenizer, prompts


def _batch(trainer, tokenizer, prompts, token_advantages: bool) -> dict:
    """Two groups of 3 (prompts of different lengths), completions of 3-8 tokens, rows shuffled."""
    from trl.trainer.utils import pad

    g = torch.Generator().manual_seed(0)
    prompt_rows = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=True)
                   ["input_ids"] for p in prompts]
    assert len(prompt_rows[0]) != len(prompt_rows[1])
    rows, completions = [], []
    for i in range(6):
        rows.append(torch.tensor(prompt_rows[i // 3]))
        completions.append(torch.randint(100, 5000, (3 + i % 6,), generator=g))
    perm = torch.randperm(6, generator=g)
    rows, completions = [rows[i] for i in perm], [completions[i] for i in perm]
    pad_id = tokenizer.pad_token_id
    prompt_ids = pad(rows, padding_value=pad_id, padding_side="left")
    prompt_mask = pad([torch.ones_like(r) for r in rows], padding_value=0, padding_side="left")
    completion_ids = pad(completions, padding_value=pad_id, padding_side="right")
    completion_mask = pad([torch.ones_like(c) for c in completions], padding_value=0, padding_side="right")
    shape = completion_ids.shape if token_advantages else (6,)
    advantages = torch.randn(shape, generator=g).to(trainer.accelerator.device)
    device = trainer.accelerator.device
    prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)
    completion_ids, completion_mask = completion_ids.to(device), completion_mask.to(device)
    batch = {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": completion_ids,
             "completion_mask": completion_mask, "advantages": advantages,
             "num_items_in_batch": completion_mask.sum(), "old_per_token_logps": None}
    input_ids = torch.cat([prompt_ids, completion_ids], 1)
    mask = torch.cat([prompt_mask, completion_mask], 1)
    with torch.no_grad():
        trainer.shared_prefix = False  # the reference model's log-probs, as TRL computes them
        ref = trainer.ref_model if trainer.ref_model is not None else trainer.model
        batch["ref_per_token_logps"] = trainer._get_per_token_logps_and_entropies(
            ref, input_ids, mask, completion_ids.size(1))[0] + 0.01 * torch.randn(completion_ids.shape,
                                                                                  generator=g).to(device)
    return batch


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp(min=1e-30))


def _loss_and_grads(trainer, batch, shared: bool):
    trainer.shared_prefix = shared
    trainer.model.zero_grad()
    trainer.model.train()
    loss = trainer._compute_loss(trainer.model, batch)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
@pytest.mark.parametrize("token_advantages", [False, True], ids=["B", "BxT"])
def test_shared_prefix_equals_trl(tiny_model_dir, tmp_path, lora, token_advantages, monkeypatch):
    import trl.trainer.utils as trl_utils

    trainer, tokenizer, prompts = _trainer(tiny_model_dir, tmp_path, lora)
    batch = _batch(trainer, tokenizer, prompts, token_advantages)
    input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
    mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
    keep = batch["completion_ids"].size(1)
    scored = batch["completion_mask"].bool()

    positions: list[int] = []  # how many positions TRL's fused head projects, per call
    apply = trl_utils._ChunkedLogProbFunction.apply
    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply",
                        lambda hidden, *a: positions.append(hidden.shape[0]) or apply(hidden, *a))
    with torch.no_grad():
        outs = {}
        for shared in (False, True):
            trainer.shared_prefix = shared
            positions.clear()
            # batch_size 4: TRL's chunks cut a group in two, which the shared path must handle too
            outs[shared] = trainer._get_per_token_logps_and_entropies(trainer.model, input_ids, mask, keep,
                                                                      batch_size=4, compute_entropy=True)
    assert sum(positions) == int(scored.sum())  # the shared path's head scored the completion tokens only
    (lp_trl, ent_trl, _), (lp_ours, ent_ours, _) = outs[False], outs[True]
    assert lp_ours.shape == lp_trl.shape and ent_ours.shape == ent_trl.shape
    assert _rel(lp_ours[scored], lp_trl[scored]) < 1e-5
    assert _rel(ent_ours[scored], ent_trl[scored]) < 1e-5
    assert torch.all(lp_ours[~scored] == 0)  # padding scores nothing, as in TRL

    loss_trl, grads_trl = _loss_and_grads(trainer, batch, shared=False)
    loss_ours, grads_ours = _loss_and_grads(trainer, batch, shared=True)
    assert abs(float(loss_ours - loss_trl)) <= 1e-5 * abs(float(loss_trl))
    assert grads_ours.keys() == grads_trl.keys() and grads_trl
    if lora:
        assert all("lora_" in n for n in grads_trl)
    flat_trl = torch.cat([g.flatten() for g in grads_trl.values()])
    flat_ours = torch.cat([grads_ours[n].flatten() for n in grads_trl])
    assert _rel(flat_ours, flat_trl) < 1e-5
    for name, g in grads_trl.items():  # and layer by layer, so no small tensor hides in the total
        assert _rel(grads_ours[name], g) < 1e-4, name


def test_groups_are_found_by_prompt_tokens_not_padding():
    from toolrl.training.shared_prefix import prompt_groups

    ids = torch.tensor([[0, 5, 6], [7, 8, 9], [0, 5, 6], [0, 0, 5]])
    mask = torch.tensor([[0, 1, 1], [1, 1, 1], [0, 1, 1], [0, 0, 1]])
    assert prompt_groups(ids, mask) == [([5, 6], [0, 2]), ([7, 8, 9], [1]), ([5], [3])]


def test_off_is_trls_own_method(tiny_model_dir, tmp_path):
    trainer, tokenizer, prompts = _trainer(tiny_model_dir, tmp_path, lora=False)
    batch = _batch(trainer, tokenizer, prompts, token_advantages=False)
    input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
    mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
    from trl import GRPOTrainer

    trainer.shared_prefix = False
    with torch.no_grad():
        ours = trainer._get_per_token_logps_and_entropies(trainer.model, input_ids, mask, batch["completion_ids"].size(1))
        stock = GRPOTrainer._get_per_token_logps_and_entropies(trainer, trainer.model, input_ids, mask,
                                                               batch["completion_ids"].size(1))
    assert torch.equal(ours[0], stock[0])


def _prompt_ids(tokenizer, prompts, group: int) -> list[list[int]]:
    rows = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
            for p in prompts]
    return [list(r) for r in rows for _ in range(group)]


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_rollouts_prefill_each_prompt_once_and_match_generate(tiny_model_dir, tmp_path, lora):
    """Greedy completions of the rollout engine (toolrl.decode: shared prefill, lean decode loop) are
    token for token those of TRL's `generate` path, on the same fp32 weights, for two groups whose
    prompts differ in length (TRL left-pads one); with a LoRA policy too (a PEFT model generates)."""
    from trl import GRPOTrainer

    trainer, tokenizer, prompts = _trainer(tiny_model_dir, tmp_path, lora=lora)
    trainer.generation_config.do_sample = False
    prompt_ids = _prompt_ids(tokenizer, prompts, 3)
    trainer.shared_prefix = True
    ours, _ = trainer._generate_single_turn(prompt_ids, None, {}, 3)
    stock, _ = GRPOTrainer._generate_single_turn(trainer, prompt_ids, None, {}, 3)
    assert ours == stock
    assert all(len(c) == 8 for c in ours)  # the scaled weights rarely say EOS: every token is compared
    # Sampling from the same seed draws the same tokens too (the distributions agree to rounding).
    trainer.generation_config.do_sample = True
    torch.manual_seed(0)
    ours, _ = trainer._generate_single_turn(prompt_ids, None, {}, 3)
    torch.manual_seed(0)
    stock, _ = GRPOTrainer._generate_single_turn(trainer, prompt_ids, None, {}, 3)
    assert ours == stock
    assert len({tuple(c) for c in ours}) == 6  # six different completions: a real comparison


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_lookup_rollouts_keep_generates_greedy_tokens(tiny_model_dir, tmp_path, lora):
    """grpo.lookup_tokens: drafted tokens checked in each pass leave greedy rollouts TRL's `generate`'s, and
    the tokens per pass are logged; sampled rollouts are drawn (the distribution: tests/test_decode.py)."""
    from trl import GRPOTrainer

    from toolrl.decode import Lookup

    trainer, tokenizer, prompts = _trainer(tiny_model_dir, tmp_path, lora=lora)
    trainer.generation_config.do_sample = False
    prompt_ids = _prompt_ids(tokenizer, prompts, 3)
    trainer.shared_prefix = True
    trainer.lookup = Lookup(4)
    trainer.model.train()  # the metric goes to the mode's log
    for _ in range(2):  # the second call drafts from the first's completions too
        ours, _ = trainer._generate_single_turn(prompt_ids, None, {}, 3)
        stock, _ = GRPOTrainer._generate_single_turn(trainer, prompt_ids, None, {}, 3)
        assert ours == stock
    logged = trainer._metrics["train"]["rollout/lookup_tokens_per_pass"]
    assert len(logged) == 2 and logged[1] > 1.0
    trainer.generation_config.do_sample = True
    ours, _ = trainer._generate_single_turn(prompt_ids, None, {}, 3)
    assert all(0 < len(c) <= 8 for c in ours) and len({tuple(c) for c in ours}) > 1


def test_bf16_rollout_weights_follow_the_policy(tiny_model_dir, tmp_path):
    trainer, tokenizer, prompts = _trainer(tiny_model_dir, tmp_path, lora=False)
    trainer.generation_dtype = torch.bfloat16
    trainer.model.train()
    policy = trainer.accelerator.unwrap_model(trainer.model)
    copy = trainer._rollout_weights(policy)
    assert copy is not policy and copy.dtype == torch.bfloat16
    name, weight = next((n, p) for n, p in policy.named_parameters() if p.dim() == 2)
    assert torch.equal(copy.get_parameter(name), weight.to(torch.bfloat16))
    with torch.no_grad():
        weight.mul_(2.0)  # an optimizer step
    assert not torch.equal(trainer._rollout_weights(policy).get_parameter(name), weight.to(torch.bfloat16))
    trainer.state.global_step += 1
    assert torch.equal(trainer._rollout_weights(policy).get_parameter(name), weight.to(torch.bfloat16))
    assert len(trainer._metrics["train"]["rollout/weight_sync_s"]) == 2
    trainer.shared_prefix = True
    completions, _ = trainer._generate_single_turn(_prompt_ids(tokenizer, prompts, 2), None, {}, 2)
    assert len(completions) == 4 and all(completions)


@pytest.mark.parametrize("at_once", [1, 2])
def test_rows_at_once_equal_the_whole_group(tiny_model_dir, tmp_path, monkeypatch, at_once):
    """Scoring a group's rows a few at a time, each chunk recomputed in backward, changes no number: the
    loss and every gradient equal TRL's path (and so the whole group at once), LoRA's adapters included."""
    from toolrl.training import shared_prefix

    trainer, tokenizer, prompts = _trainer(tiny_model_dir, tmp_path, lora=True)
    batch = _batch(trainer, tokenizer, prompts, token_advantages=True)
    loss_trl, grads_trl = _loss_and_grads(trainer, batch, shared=False)
    chunks = []
    monkeypatch.setattr(shared_prefix, "checkpoint",
                        lambda fn, part, **kw: chunks.append(part) or torch.utils.checkpoint.checkpoint(fn, part, **kw))
    trainer.loss_rows_at_once = at_once
    loss_ours, grads_ours = _loss_and_grads(trainer, batch, shared=True)
    assert len(chunks) == 2 * -(-3 // at_once)  # two groups of 3 rows, in chunks of at most `at_once`
    assert abs(float(loss_ours - loss_trl)) <= 1e-5 * abs(float(loss_trl))
    assert grads_ours.keys() == grads_trl.keys() and grads_trl
    for name, g in grads_trl.items():
        assert _rel(grads_ours[name], g) < 1e-4, name
