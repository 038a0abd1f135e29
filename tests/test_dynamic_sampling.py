"""Dynamic sampling (toolrl.training.dynamic_sampling): groups without signal are found from the advantages,
replaced row for row by groups with signal from further passes, and the batch keeps its size, its padding
layout and TRL's token count; off, the trainer's batch is TRL's one pass."""

from __future__ import annotations

import pytest
import torch

from toolrl import formats
from toolrl.training import dynamic_sampling as ds

PAD = 0


def _batch(prompts: list[list[int]], completions: list[list[int]], advantages: list[float] | torch.Tensor) -> dict:
    """A batch laid out as TRL's `_generate_and_score_completions` returns it (prompts left-padded,
    completions right-padded), with a completion-aligned log-prob tensor beside."""
    from trl.trainer.utils import pad

    p = [torch.tensor(x) for x in prompts]
    c = [torch.tensor(x) for x in completions]
    completion_ids = pad(c, padding_value=PAD, padding_side="right")
    return {
        "prompt_ids": pad(p, padding_value=PAD, padding_side="left"),
        "prompt_mask": pad([torch.ones_like(x) for x in p], padding_value=0, padding_side="left"),
        "completion_ids": completion_ids,
        "completion_mask": pad([torch.ones_like(x) for x in c], padding_value=0, padding_side="right"),
        "ref_per_token_logps": pad([-x.float() for x in c], padding_value=0.0, padding_side="right"),
        "advantages": torch.as_tensor(advantages, dtype=torch.float32),
        "num_items_in_batch": torch.tensor(sum(len(x) for x in completions)),
    }


def _rows(batch: dict, row: int) -> tuple[list[int], list[int], list[float]]:
    """A row's unpadded prompt, completion and completion-aligned log-probs."""
    prompt = batch["prompt_ids"][row][batch["prompt_mask"][row].bool()].tolist()
    mask = batch["completion_mask"][row].bool()
    return prompt, batch["completion_ids"][row][mask].tolist(), batch["ref_per_token_logps"][row][mask].tolist()


def test_silent_groups_are_read_from_the_advantages():
    adv = torch.tensor([0.0, 0.0, 1e-9, -1e-9, 0.7, -0.7])  # group 1's tie is a rounding error off 0
    mask = torch.ones(6, 3)
    assert ds.silent_groups(adv, mask, 2) == [0, 1]
    # grpo_trm's (rows, tokens) advantages: a call term on a completion token is signal, on padding it is not
    tokens = torch.zeros(4, 3)
    tokens[1, 0] = 0.2
    tokens[3, 2] = 0.5
    mask = torch.tensor([[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 0]])
    assert ds.silent_groups(tokens, mask, 2) == [1]


def test_a_tied_group_off_zero_by_rounding_is_silent():
    # TRL's advantage of a tied group: (r - mean) / (std + 1e-4), where the mean of equal rewards can be one
    # rounding step off r; the 1e-4 then makes |A| ~ 1e-3, equal on every row
    from trl.trainer.utils import nanstd

    r = torch.full((3,), 0.9)
    adv = (r - r.mean()) / (nanstd(r) + 1e-4)
    assert adv.abs().max() > 1e-6  # the case at hand: not 0
    both = torch.cat([adv, torch.tensor([0.5, -0.25, -0.25])])
    assert ds.silent_groups(both, torch.ones(6, 2), 3) == [0]


def test_a_batch_whose_every_completion_is_masked_keeps_one_column():
    # grpo.mask_truncated_completions can zero every row's completion mask; TRL's loss needs a width
    b = _batch([[5], [5]], [[1, 2], [3, 4]], [0.0, 0.0])
    b["completion_mask"] = torch.zeros_like(b["completion_mask"])
    assert ds.trim(b)["completion_ids"].shape == (2, 1)


def test_each_pass_metrics_fold_into_one_value_weighted_by_rows():
    metrics = {"reward": [9.0, 1.0, 4.0], "completions/min_length": [3.0, 7.0], "completions/max_length": [5.0, 9.0],
               "completions/mean_terminated_length": [2.0, float("nan")], "num_tokens": [100.0], "kl": [0.5]}
    ds.fold_pass_metrics(metrics, {"reward": 1, "num_tokens": 1, "kl": 1}, rows=[8, 4])
    assert metrics["reward"] == [9.0, pytest.approx((1.0 * 8 + 4.0 * 4) / 12)]  # the earlier step's value stays
    assert metrics["completions/min_length"] == [3.0] and metrics["completions/max_length"] == [9.0]
    assert metrics["completions/mean_terminated_length"] == [2.0]  # a mean, NaN left out
    assert metrics["num_tokens"] == [100.0] and metrics["kl"] == [0.5]  # not one value per pass: untouched


def test_groups_must_be_whole_and_together():
    b = _batch([[5, 6], [5, 6], [7], [7]], [[1], [2], [3], [4]], [0, 0, 1, -1])
    assert ds.group_rows(b["prompt_ids"], b["prompt_mask"], 2) == 2
    with pytest.raises(ds.DynamicSamplingError, match="multiple of num_generations"):
        ds.group_rows(b["prompt_ids"], b["prompt_mask"], 3)
    mixed = _batch([[5, 6], [7], [5, 6], [7]], [[1], [2], [3], [4]], [0, 0, 1, -1])
    with pytest.raises(ds.DynamicSamplingError, match="do not share one prompt"):
        ds.group_rows(mixed["prompt_ids"], mixed["prompt_mask"], 2)


def test_replaced_groups_keep_their_rows_and_the_layout():
    # the batch: group 0 silent (short prompt, short completions), group 1 with signal
    batch = _batch([[5], [5], [6, 6], [6, 6]], [[1], [1, 2], [3, 3], [4]], [0.0, 0.0, 0.5, -0.5])
    # the extra pass: group 0 silent, group 1 longer in both prompt and completion
    extra = _batch([[8], [8], [9, 9, 9], [9, 9, 9]], [[2], [2], [1, 2, 3, 4], [7]], [0.0, 0.0, 1.0, -1.0])
    out = ds.replace_groups(batch, extra, [(0, 1)], 2, PAD)
    assert out["prompt_ids"].shape == (4, 3) and out["completion_ids"].shape == (4, 4)
    assert [_rows(out, r) for r in range(4)] == [_rows(extra, 2), _rows(extra, 3), _rows(batch, 2), _rows(batch, 3)]
    assert out["advantages"].tolist() == [1.0, -1.0, 0.5, -0.5]
    # still left-padded prompts and right-padded completions: TRL's loss reads them as such
    assert out["prompt_mask"][2].tolist() == [0, 1, 1] and out["completion_mask"][2].tolist() == [1, 1, 0, 0]
    assert "num_items_in_batch" not in out


def test_padding_no_kept_row_uses_is_trimmed():
    batch = _batch([[5], [5], [6], [6]], [[1], [1], [3], [4]], [0.0, 0.0, 0.5, -0.5])
    extra = _batch([[8], [8], [9, 9, 9, 9], [9, 9, 9, 9]], [[2, 2], [2], [1, 2, 3, 4, 5], [7]],
                   [0.5, -0.5, 0.0, 0.0])
    out = ds.replace_groups(batch, extra, [(0, 0)], 2, PAD)  # the long group 1 of `extra` is not kept
    assert out["prompt_ids"].shape == (4, 1) and out["completion_ids"].shape == (4, 2)
    assert out["ref_per_token_logps"].shape == (4, 2)
    assert [_rows(out, r) for r in range(4)] == [_rows(extra, 0), _rows(extra, 1), _rows(batch, 2), _rows(batch, 3)]
    # with pad_to_multiple_of the widths stay multiples of it
    out = ds.replace_groups(batch, extra, [(0, 0)], 2, PAD, pad_to_multiple_of=4)
    assert out["completion_ids"].shape == (4, 4)


def test_draws_are_seeded_whole_groups():
    data = [{"prompt": f"p{i}"} for i in range(10)]
    a = ds.draw_inputs(data, 3, 4, "0/5/1/0")
    assert a == ds.draw_inputs(data, 3, 4, "0/5/1/0") and len(a) == 12
    assert all(a[g * 4] == a[g * 4 + i] for g in range(3) for i in range(4))
    assert len({x["prompt"] for x in a}) == 3  # without replacement
    assert a != ds.draw_inputs(data, 3, 4, "0/6/1/0")
    a[0]["prompt"] = "changed"  # rows are copies: TRL writes rollout fields into them
    assert data[int(a[4]["prompt"][1:])]["prompt"] != "changed"


TOOLS = [{"name": "get_weather", "description": "Weather in a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def reward_by_kind(prompts, completions, kind, **kwargs):
    """`tie` prompts: every completion alike (a silent group); `vary`: a reward from the completion's text."""
    return [0.0 if k == "tie" else float(sum(map(ord, str(c))) % 97) for c, k in zip(completions, kind, strict=True)]


def _trainer(tiny_model_dir, tmp_path, passes: int, rows: list[tuple[str, str]]):
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig

    from toolrl.training.shared_prefix import SharedPrefixGRPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    data = [{"prompt": formats.prompt_messages(TOOLS, [{"role": "user", "content": q}]), "kind": k} for q, k in rows]
    args = GRPOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=6, num_generations=3,
                      max_completion_length=8, beta=0.04, bf16=False, report_to=[], use_cpu=True, seed=0,
                      activation_checkpointing=False, model_init_kwargs={"dtype": "float32"})
    trainer = SharedPrefixGRPOTrainer(model=str(tiny_model_dir), reward_funcs=reward_by_kind, args=args,
                                      train_dataset=Dataset.from_list(data), processing_class=tokenizer,
                                      dynamic_sampling=passes)
    trainer.model.train()
    return trainer, data


@pytest.mark.slow
def test_the_trainer_replaces_silent_groups_by_drawn_ones(tiny_model_dir, tmp_path):
    rows = [("Weather in Paris?", "tie")] + [(f"Weather in city number {i}?", "vary") for i in range(6)]
    trainer, data = _trainer(tiny_model_dir, tmp_path, 2, rows)
    inputs = [dict(data[0]) for _ in range(3)] + [dict(data[1]) for _ in range(3)]
    out = trainer._generate_and_score_completions(inputs)
    assert out["completion_ids"].size(0) == 6
    assert ds.silent_groups(out["advantages"], out["completion_mask"], 3) == []
    tie = trainer.processing_class.apply_chat_template(data[0]["prompt"], add_generation_prompt=True, tokenize=True,
                                                      return_dict=True)["input_ids"]
    prompts = [out["prompt_ids"][r][out["prompt_mask"][r].bool()].tolist() for r in range(6)]
    assert tie not in prompts  # the silent group is gone, the group with signal kept its place
    assert prompts[3:] == [prompts[3]] * 3
    assert int(out["num_items_in_batch"]) == int(out["completion_mask"].sum())
    m = trainer._metrics["train"]
    assert m["dynamic_sampling/silent_first"] == [0.5] and m["dynamic_sampling/replaced"] == [0.5]
    assert m["dynamic_sampling/silent_kept"] == [0.0] and m["dynamic_sampling/passes"] == [1.0]


@pytest.mark.slow
def test_passes_are_bounded_and_off_is_one_pass(tiny_model_dir, tmp_path):
    trainer, data = _trainer(tiny_model_dir, tmp_path, 2, [("Weather in Paris?", "tie"), ("Weather in Rome?", "tie")])
    out = trainer._generate_and_score_completions([dict(data[i // 3]) for i in range(6)])
    assert out["completion_ids"].size(0) == 6  # nothing with signal to draw: the silent groups stay
    m = trainer._metrics["train"]
    assert m["dynamic_sampling/passes"] == [2.0] and m["dynamic_sampling/silent_kept"] == [1.0]
    # TRL logged the step's pass and the two further ones; folded into one value, every group silent
    assert m["frac_reward_zero_std"] == [1.0] and len(m["reward"]) == 1

    off, data = _trainer(tiny_model_dir, tmp_path, 0, [("Weather in Paris?", "tie"), ("Weather in Rome?", "tie")])
    off._generate_and_score_completions([dict(data[i // 3]) for i in range(6)])
    assert len(off._metrics["train"]["frac_reward_zero_std"]) == 1
    assert not any(k.startswith("dynamic_sampling/") for k in off._metrics["train"])
