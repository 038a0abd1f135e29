"""The project's SFTTrainer (toolrl.training.sft_trainer) computes the stock SFTTrainer's loss and gradient
(fp32, relative 1e-5) while its fused LM head scores only the labelled positions on CPU and its right-padded
batches run without a padding mask; and the mask is dropped for right padding only."""

from __future__ import annotations

import torch

from toolrl import formats

TOOLS = [{"name": "get_weather", "description": "Weather in a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
ROWS = [("Weather in Paris?", '<tool_call>\n{"name": "get_weather", "parameters": {"city": "Paris"}}\n</tool_call>'),
        ("What is the weather like in Lima today, and should I take an umbrella?",
         "<response> I can check Lima's weather for you. </response>"),
        ("Rome?", '<tool_call>\n{"name": "get_weather", "parameters": {"city": "Rome"}}\n</tool_call>')]


def _trainer(cls, tiny_model_dir, tmp_path):
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    data = Dataset.from_list([{"prompt": formats.prompt_messages(TOOLS, [{"role": "user", "content": q}]),
                               "completion": [{"role": "assistant", "content": a}]} for q, a in ROWS])
    args = SFTConfig(output_dir=str(tmp_path / cls.__name__), per_device_train_batch_size=3, bf16=False,
                     use_cpu=True, report_to=[], max_length=1024, completion_only_loss=True,
                     model_init_kwargs={"dtype": "float32"})
    trainer = cls(model=str(tiny_model_dir), args=args, train_dataset=data, processing_class=tokenizer)
    torch.manual_seed(1)  # weights large enough that every position's logits matter (see test_shared_prefix)
    for p in trainer.model.parameters():
        if p.dim() == 2:
            p.data.normal_(0, 0.1)
    return trainer


def _loss_and_grads(trainer, batch):
    trainer.model.zero_grad()
    loss = trainer.compute_loss(trainer.model, dict(batch))
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in trainer.model.named_parameters()}


def test_lean_sft_loss_and_gradient_are_the_stock_trainers(tiny_model_dir, tmp_path, monkeypatch):
    import trl.trainer.utils as trl_utils
    from trl import SFTTrainer

    from toolrl.training.sft_trainer import LeanSFTTrainer

    stock = _trainer(SFTTrainer, tiny_model_dir, tmp_path)
    ours = _trainer(LeanSFTTrainer, tiny_model_dir, tmp_path)
    ours.model.load_state_dict(stock.model.state_dict())
    batch = next(iter(stock.get_train_dataloader()))
    labelled = int((batch["labels"][:, 1:] != -100).sum())
    assert labelled < batch["labels"][:, 1:].numel() / 4  # the prompts are most of the positions

    scored: list[int] = []  # positions the fused head projects, per call
    apply = trl_utils._ChunkedLogProbFunction.apply
    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply",
                        lambda hidden, *a: scored.append(hidden.shape[0]) or apply(hidden, *a))
    masks: list[object] = []  # the attention mask each model's forward received
    for trainer in (stock, ours):
        trainer.model.register_forward_pre_hook(lambda _m, _a, kw: masks.append(kw.get("attention_mask")),
                                                with_kwargs=True)
    stock_loss, stock_grads = _loss_and_grads(stock, batch)
    ours_loss, ours_grads = _loss_and_grads(ours, batch)

    assert scored == [batch["labels"][:, 1:].numel(), labelled]
    assert not bool(batch["attention_mask"].all()) and masks[0] is not None and masks[1] is None
    torch.testing.assert_close(ours_loss, stock_loss, rtol=1e-5, atol=0)
    for name, grad in stock_grads.items():
        torch.testing.assert_close(ours_grads[name], grad, rtol=1e-5, atol=1e-7, msg=name)
    assert trl_utils._use_triton(torch.device("cpu")) is False  # the switch is restored after the loss


def test_only_right_padding_loses_its_mask():
    from toolrl.training.right_padding import _drop_mask, is_right_padded

    right = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0]])
    assert is_right_padded(right) and is_right_padded(torch.ones(2, 4, dtype=torch.bool))
    for kept in (right.flip(1), torch.tensor([[1, 0, 1]]), torch.tensor([[0, 0, 0]])):  # left, holes, empty
        assert not is_right_padded(kept)
        assert _drop_mask(None, (), {"attention_mask": kept})[1]["attention_mask"] is kept
    assert _drop_mask(None, (), {"attention_mask": right})[1]["attention_mask"] is None
    cached = {"attention_mask": right, "past_key_values": object()}  # a pass with a cache keeps its mask
    assert _drop_mask(None, (), cached)[1]["attention_mask"] is right
    assert not is_right_padded(torch.tensor([[2, 2, 1, 0]]))  # not a 0/1 mask


def test_a_bidirectional_model_keeps_its_mask(tiny_model_dir):
    from transformers import AutoModelForCausalLM, BertConfig, BertForTokenClassification

    from toolrl.training.right_padding import causal_without_right_padding_mask, is_causal

    encoder = BertForTokenClassification(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=32))
    assert not is_causal(encoder) and causal_without_right_padding_mask(encoder) is None
    decoder = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    assert is_causal(decoder) and causal_without_right_padding_mask(decoder) is not None
