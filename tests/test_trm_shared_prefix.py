"""The TRM's passes with each batch's common prompt computed once (toolrl.training.common_prefix,
toolrl.trm.prefix_trainer): the stock forward's logits, loss and gradients (fp32, relative 1e-5), fewer
tokens computed, and batches drawn prompt by prompt."""

from __future__ import annotations

import pytest

from toolrl import formats
from toolrl.training.common_prefix import prefix_groups, shared_prefix_logits
from toolrl.trm.steps import IGNORE, encode_step

TOOLS = [{"name": "get_weather", "description": "Weather of a city, today or on a given date.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "date": {"type": "string"}},
                         "required": ["city"]}}]
PARIS = formats.prompt_messages(TOOLS, [{"role": "user", "content": "Weather in Paris and Lima?"}])
OSLO = formats.prompt_messages(TOOLS, [{"role": "user", "content": "Will it rain in Oslo tomorrow?"}])
LONE = formats.prompt_messages([], [{"role": "user", "content": "Hi"}])
CALL = '{"name": "get_weather", "parameters": {"city": "%s"}}'
# (prompt, prefix, call, label): two records of one completion (the second's prefix holds the first
# call), a reference call and its negative, another prompt's pair, and a record alone
RECORDS = [
    (PARIS, "<think> two cities </think>\n<tool_call>\n", CALL % "Paris", 1),
    (PARIS, "<think> two cities </think>\n<tool_call>\n" + CALL % "Paris" + "\n", CALL % "Lima", 1),
    (PARIS, "<tool_call>\n", CALL % "Pariss", 0),
    (OSLO, "<tool_call>\n", CALL % "Oslo", 1),
    (OSLO, "<tool_call>\n", '{"name": "get_weather", "parameters": {}}', 0),
    (LONE, "<tool_call>\n", CALL % "x", 0),
]


def test_prefix_groups_known_answers():
    rows = [[1, 2, 3, 4, 5], [1, 2, 3, 9], [7, 8], [1, 2, 3, 4, 5, 6], [1, 2, 3, 9, 9]]
    groups = prefix_groups(rows, min_shared=2)
    assert sorted(r for _, g in groups for r in g) == [0, 1, 2, 3, 4]  # every row once
    # in token order: [1,2,3,4,5] and [1,2,3,4,5,6] share 4 (every row keeps a token of its own);
    # [1,2,3,9] cuts the group to 3 tokens (2 rows x 1 token lost against 3 gained), so it joins, and
    # [1,2,3,9,9] with it; [7,8] is alone
    assert groups == [(3, [0, 3, 1, 4]), (0, [2])]
    for shared, members in groups:
        assert all(shared <= len(rows[i]) - 1 for i in members)
        assert all(rows[i][:shared] == rows[members[0]][:shared] for i in members)
    # joining stops where it would lose more than it shares: 3 rows sharing 9 tokens, a fourth sharing 3
    long = [[1] * 9 + [2], [1] * 9 + [3], [1] * 9 + [4], [1] * 3 + [5]]
    assert prefix_groups(long, min_shared=2) == [(9, [0, 1, 2]), (0, [3])]
    assert prefix_groups([[1, 2], [1, 3]], min_shared=2) == [(0, [0]), (0, [1])]  # 1 shared < min_shared
    assert prefix_groups([]) == []


@pytest.fixture(scope="module")
def trm(tiny_model_dir):
    from trm_fixtures import context_sensitive_trm

    from toolrl.training.right_padding import causal_without_right_padding_mask

    model, tokenizer = context_sensitive_trm(tiny_model_dir)
    causal_without_right_padding_mask(model)  # as the trm stage's model
    return model, tokenizer


def _batch(tokenizer, records=RECORDS):
    from transformers import DataCollatorForTokenClassification

    rows = [encode_step(tokenizer, p, prefix, call, label) for p, prefix, call, label in records]
    return DataCollatorForTokenClassification(tokenizer)(rows)


def test_shared_prefix_logits_loss_and_gradients_equal_the_stock_forward(trm):
    import torch

    from toolrl.trm.trainer import WeightedLastTokenLoss

    model, tokenizer = trm
    batch = _batch(tokenizer)
    labels = batch.pop("labels")
    real = batch["attention_mask"].bool()
    loss_fn = WeightedLastTokenLoss([0.7, 1.3])
    fed: list[int] = []
    hook = model.register_forward_pre_hook(lambda _m, _a, kw: fed.append(kw["input_ids"].numel()), with_kwargs=True)
    results = []
    for shared in (False, True):
        model.zero_grad()
        fed.clear()
        if shared:
            logits = shared_prefix_logits(model, batch["input_ids"], batch["attention_mask"])
        else:
            logits = model(**batch).logits
        loss = loss_fn({"logits": logits}, labels)
        loss.backward()
        results.append((logits.detach()[real], loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()},
                        sum(fed)))
    hook.remove()
    (stock, stock_loss, stock_grads, stock_tokens), (ours, our_loss, our_grads, our_tokens) = results
    torch.testing.assert_close(ours, stock, rtol=1e-5, atol=1e-6)  # every real position, not only the labelled
    torch.testing.assert_close(our_loss, stock_loss, rtol=1e-5, atol=1e-7)
    for name, grad in stock_grads.items():
        torch.testing.assert_close(our_grads[name], grad, rtol=1e-5, atol=1e-6, msg=name)
    # the stock forward computed every padded row; ours each prompt once
    assert stock_tokens == batch["input_ids"].numel()
    assert our_tokens < 0.6 * int(batch["attention_mask"].sum())


def test_a_bidirectional_model_and_left_padding_take_the_stock_forward(trm):
    import torch
    from transformers import BertConfig, BertForTokenClassification

    model, tokenizer = trm
    batch = _batch(tokenizer, RECORDS[:3])
    calls: list[object] = []
    hook = model.register_forward_pre_hook(lambda _m, _a, kw: calls.append(kw.get("past_key_values")),
                                           with_kwargs=True)
    left = {k: torch.flip(batch[k], dims=[1]) for k in ("input_ids", "attention_mask")}  # padding on the left
    with torch.no_grad():
        shared_prefix_logits(model, left["input_ids"], left["attention_mask"])
    hook.remove()
    assert calls == [None]  # one plain pass, no cache
    encoder = BertForTokenClassification(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=32)).eval()
    ids = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 5]])  # a 3-token prefix a causal model would share
    mask = torch.ones_like(ids)
    with torch.no_grad():
        torch.testing.assert_close(shared_prefix_logits(encoder, ids, mask, min_shared=1),
                                   encoder(input_ids=ids).logits)


def test_prompt_group_sampler_keeps_a_prompts_records_together():
    from toolrl.trm.prefix_trainer import PromptGroupSampler, prompt_index_groups

    records = [{"prompt": p} for p, *_ in RECORDS]
    groups = prompt_index_groups(records)
    assert groups == [[0, 1, 2], [3, 4], [5]]
    sampler = PromptGroupSampler(groups, seed=3)
    orders = []
    for epoch in range(6):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert sorted(order) == list(range(6)) and len(sampler) == 6
        runs = [order[i:i + len(g)] for i in range(6) for g in groups if order[i:i + len(g)] == g]
        assert sorted(map(tuple, runs)) == sorted(map(tuple, groups))  # each group consecutive, in its order
        orders.append(order)
    assert len({tuple(o) for o in orders}) > 1  # shuffled per epoch
    sampler.set_epoch(2)
    assert list(sampler) == orders[2]  # and reproducible


def test_trainer_step_equals_the_stock_trainers(trm, tmp_path):
    """One optimizer step of TrmTrainer (shared prefix) and of the stock path on the same batch: the same
    loss and the same updated weights (fp32; plain SGD, since Adam's first step is lr x the gradient's sign,
    which rounding flips where a gradient is ~0)."""
    import copy

    import torch
    from datasets import Dataset
    from transformers import DataCollatorForTokenClassification, TrainingArguments

    from toolrl.trm.prefix_trainer import PromptGroupSampler, TrmTrainer
    from toolrl.trm.trainer import WeightedLastTokenLoss

    model, tokenizer = trm
    rows = [encode_step(tokenizer, p, prefix, call, label) for p, prefix, call, label in RECORDS]
    after, losses, cached = [], [], []
    for shared in (False, True):
        args = TrainingArguments(output_dir=str(tmp_path / f"t{shared}"), max_steps=1, learning_rate=1e-3,
                                 per_device_train_batch_size=len(rows), report_to=[], use_cpu=True, optim="sgd",
                                 save_strategy="no", logging_steps=1, seed=0, remove_unused_columns=False)
        trainer = TrmTrainer(model=copy.deepcopy(model), args=args, train_dataset=Dataset.from_list(rows),
                             processing_class=tokenizer, data_collator=DataCollatorForTokenClassification(tokenizer),
                             compute_loss_func=WeightedLastTokenLoss(), shared_prefix=shared,
                             prompt_groups=[[0, 1, 2], [3, 4], [5]])
        assert isinstance(trainer._get_train_sampler(), PromptGroupSampler)
        passes: list[bool] = []
        trainer.model.register_forward_pre_hook(
            lambda _m, _a, kw, passes=passes: passes.append(kw.get("past_key_values") is not None), with_kwargs=True)
        trainer.train()
        cached.append(any(passes))
        losses.append(trainer.state.log_history[0]["loss"])
        after.append({n: p.detach().clone() for n, p in trainer.model.named_parameters()})
    assert cached == [False, True]  # the stock path, then the shared prefix's cached passes
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for name, weight in after[0].items():
        torch.testing.assert_close(after[1][name], weight, rtol=1e-5, atol=1e-6, msg=name)
    assert any(not torch.equal(after[0][n], p) for n, p in model.named_parameters())  # the step moved them


def test_the_scorer_gives_each_calls_own_score(trm, tmp_path):
    """TrmScorer batches in token order with shared prompts: each call's score is its own stock forward's."""
    import torch

    from toolrl.trm.model import positive_probs, save_trm
    from toolrl.trm.score import TrmScorer

    model, tokenizer = trm
    save_trm(model, tokenizer, tmp_path / "trm", {"max_length": 1024})
    scorer = TrmScorer(tmp_path / "trm", device="cpu", batch_size=4)
    steps = [(p, prefix, call) for p, prefix, call, _ in RECORDS]
    scores = scorer.score_steps(steps)
    alone = []
    with torch.no_grad():
        for p, prefix, call in steps:
            enc = encode_step(tokenizer, p, prefix, call)
            logits = scorer.model(input_ids=torch.tensor([enc["input_ids"]])).logits
            alone.append(positive_probs(logits, torch.tensor([enc["labels"]])).item())
    assert scores == pytest.approx(alone, rel=1e-5)
    assert IGNORE == -100
