"""The TRM-guided GRPOTrainer: per-token advantages reach TRL's loss with the call term on the right tokens.

The policy's rollouts are scripted through TRL's `rollout_func` hook (completions with two calls, one
call and none), so the arithmetic can be checked against hand-computed values on a real trainer."""

from __future__ import annotations

import math

import pytest

from toolrl import formats
from toolrl.trm.calls import call_spans

TOOLS = [{"name": "get_weather", "description": "Weather in a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
PARIS, LIMA = formats.ToolCall("get_weather", {"city": "Paris"}), formats.ToolCall("get_weather", {"city": "Lima"})
# two groups of two: [two calls, one call], [no call, one call]
SCRIPT = [
    formats.render_completion("two", [PARIS, LIMA], None),
    formats.render_completion("one", [LIMA], None),
    formats.render_completion("none", [], "No tool needed."),
    formats.render_completion("one", [PARIS], None),
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


@pytest.fixture(scope="module")
def trm_dir(tiny_model_dir, tmp_path_factory):
    """An untrained TRM (random head): its scores are arbitrary but real, which is all the arithmetic needs."""
    from toolrl.trm.model import init_trm, save_trm

    model, tok = init_trm(tiny_model_dir)
    return save_trm(model, tok, tmp_path_factory.mktemp("trm"), {"max_length": 512, "threshold": 0.5})


def test_a_new_trm_head_is_drawn_from_the_seed(tiny_model_dir):
    import torch

    from toolrl.trm.model import init_trm

    def head(seed: int) -> torch.Tensor:
        torch.rand(7)  # whatever the global generator went through before
        return init_trm(tiny_model_dir, seed=seed)[0].score.weight.detach().clone()

    assert torch.equal(head(3), head(3))
    assert not torch.equal(head(3), head(4))


def test_call_token_spans_cover_the_calls(tokenizer):
    from toolrl.trm.calls import call_token_spans

    city = formats.ToolCall("get_weather", {"city": "Saint-Étienne"})
    text = formats.render_completion("Two.", [PARIS, city], "ok")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    spans = call_spans(text)
    tokens = call_token_spans(tokenizer, ids, spans)
    assert tokens[0][1] <= tokens[1][0]  # no overlap
    for (s, e), span in zip(tokens, spans, strict=True):
        decoded = tokenizer.decode(ids[s:e])
        assert span.text in decoded and len(decoded) <= len(span.text) + 2
    assert call_token_spans(tokenizer, [], spans) == [(0, 0), (0, 0)]


def _trainer(tiny_model_dir, trm_dir, tmp_path, tokenizer, mode: str, alpha: float):
    from datasets import Dataset
    from trl import GRPOConfig

    from toolrl.trm.grpo import TrmGRPOTrainer
    from toolrl.trm.score import TrmScorer

    prompts = [formats.prompt_messages(TOOLS, [{"role": "user", "content": f"Weather {i}?"}]) for i in range(2)]

    def rollout(batch_prompts, trainer):  # one scripted completion per (already repeated) prompt
        assert len(batch_prompts) == len(SCRIPT)
        p_ids = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=False)
                 for p in batch_prompts]
        c_ids = [tokenizer(t + tokenizer.eos_token, add_special_tokens=False)["input_ids"] for t in SCRIPT]
        return {"prompt_ids": p_ids, "completion_ids": c_ids, "logprobs": None}

    def reward(completions, **kwargs):  # outcome: the longer the better, distinct per completion
        return [float(len(c[0]["content"])) for c in completions]

    args = GRPOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, num_generations=2,
                      max_completion_length=96, max_steps=1, beta=0.0, report_to="none", logging_steps=1,
                      save_strategy="no", shuffle_dataset=False, learning_rate=1e-4, bf16=False)
    return TrmGRPOTrainer(model=str(tiny_model_dir), reward_funcs=[reward], args=args,
               train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]), processing_class=tokenizer,
               rollout_func=rollout, trm_scorer=TrmScorer(trm_dir), alpha=alpha, call_advantage=mode), prompts


def _expected_rows(tokenizer, trainer, prompts, out):
    """Outcome advantages and call scores recomputed by hand."""
    rewards = [float(len(t)) for t in SCRIPT]

    def z2(a, b):  # unbiased z-score of a pair: +-1/sqrt(2) (minus the 1e-4 in the denominator)
        sd = abs(a - b) / math.sqrt(2)
        return ((a - b) / 2) / (sd + 1e-4) if a != b else 0.0

    outcome = [z2(rewards[0], rewards[1]), z2(rewards[1], rewards[0]), z2(rewards[2], rewards[3]),
               z2(rewards[3], rewards[2])]
    _, scores = trainer.trm.score_completions([prompts[0], prompts[0], prompts[1], prompts[1]], SCRIPT)
    return outcome, scores, z2


@pytest.mark.slow
def test_turn_level_advantages_reach_the_loss(tiny_model_dir, trm_dir, tmp_path, tokenizer):
    import torch

    alpha = 0.5
    trainer, prompts = _trainer(tiny_model_dir, trm_dir, tmp_path, tokenizer, "turn_level", alpha)
    trainer.model.train()
    inputs = [{"prompt": prompts[0]}, {"prompt": prompts[0]}, {"prompt": prompts[1]}, {"prompt": prompts[1]}]
    out = trainer._generate_and_score_completions(inputs)
    adv, ids, mask = out["advantages"], out["completion_ids"], out["completion_mask"]
    assert adv.shape == ids.shape
    outcome, scores, z2 = _expected_rows(tokenizer, trainer, prompts, out)
    assert [len(s) for s in scores] == [2, 1, 0, 1]
    call0 = [z2(scores[0][0], scores[1][0]), z2(scores[1][0], scores[0][0])]
    for b in range(4):
        row, n = adv[b][mask[b].bool()], int(mask[b].sum())
        off_call = {round(v, 5) for v in row.tolist()}
        assert round(outcome[b], 5) in off_call
        changed = (row - outcome[b]).abs() > 1e-6
        if b in (0, 1):  # the first calls compete; completion 0's lone second call gets no call term
            assert torch.allclose(row[changed], torch.full((int(changed.sum()),), outcome[b] + alpha * call0[b]),
                                  atol=1e-5)
            assert tokenizer.decode(ids[b][:n][changed]).strip() == (PARIS if b == 0 else LIMA).to_json()
        else:  # group 2: one completion without calls, one lone first call -> outcome only
            assert not changed.any()
    assert trainer._metrics["train"]["trm/mean_calls"] == [1.0]
    assert trainer._metrics["train"]["trm/multi_call_groups"] == [0.5]  # group 1 has the 2-call completion

    # the same batch through TRL's loss, and a real optimisation step
    trainer.train()
    logged = [h for h in trainer.state.log_history if "trm/mean_calls" in h]
    assert logged and logged[0]["trm/mean_calls"] == 1.0 and math.isfinite(logged[0]["loss"])


@pytest.mark.slow
def test_pooled_ablation_scores_all_calls_together(tiny_model_dir, trm_dir, tmp_path, tokenizer):
    trainer, prompts = _trainer(tiny_model_dir, trm_dir, tmp_path, tokenizer, "pooled", 0.5)
    trainer.model.train()
    inputs = [{"prompt": prompts[0]}, {"prompt": prompts[0]}, {"prompt": prompts[1]}, {"prompt": prompts[1]}]
    out = trainer._generate_and_score_completions(inputs)
    outcome, scores, _ = _expected_rows(tokenizer, trainer, prompts, out)
    row0 = out["advantages"][0][out["completion_mask"][0].bool()]
    # completion 0's second call now carries a call term (pooled with the group's other calls)
    distinct = {round(v, 5) for v in row0.tolist()} - {round(outcome[0], 5)}
    assert len(distinct) == 2


def test_bf16_scoring_loads_bf16_weights_and_agrees_with_float32(trm_dir):
    import torch

    from toolrl.trm.score import TrmScorer

    prompt = formats.prompt_messages(TOOLS, [{"role": "user", "content": "Weather in Paris and Lima?"}])
    fp32, bf16 = TrmScorer(trm_dir), TrmScorer(trm_dir, dtype="bfloat16")
    assert bf16.model.dtype == torch.bfloat16 and fp32.model.dtype == torch.float32
    spans, want = fp32.score_completions([prompt], [SCRIPT[0]])
    _, got = bf16.score_completions([prompt], [SCRIPT[0]])
    assert len(spans[0]) == 2
    assert got[0] == pytest.approx(want[0], abs=0.02)
