"""Step records and their tokenisation: the label lands on the last token of its call."""

from __future__ import annotations

import pytest

from toolrl import formats
from toolrl.trm.calls import call_spans
from toolrl.trm.steps import IGNORE, encode_step, label_position, policy_steps, prompt_text

TOOLS = [{"name": "get_weather", "description": "Weather.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
PROMPT = formats.prompt_messages(TOOLS, [{"role": "user", "content": "Weather in Paris and Lima?"}])


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


def test_label_sits_on_the_last_token_of_each_call(tokenizer):
    calls = [formats.ToolCall("get_weather", {"city": "Paris"}), formats.ToolCall("get_weather", {"city": "Lima"}),
             formats.ToolCall("get_weather", {"city": "Saint-Étienne"})]
    text = formats.render_completion("Two cities.", calls, "Done.")
    steps = policy_steps("p1", 0, PROMPT, text, call_spans(text))
    assert [s["call"] for s in steps] == [c.to_json() for c in calls]
    for i, step in enumerate(steps):
        enc = encode_step(tokenizer, step["prompt"], step["prefix"], step["call"], label=i % 2)
        pos = label_position(enc["labels"])
        assert enc["labels"][pos] == i % 2
        assert sum(v != IGNORE for v in enc["labels"]) == 1
        assert pos == len(enc["input_ids"]) - 1  # nothing after the call is fed
        decoded = tokenizer.decode(enc["input_ids"])
        # the sequence ends exactly with the call, and holds the earlier calls in its context
        assert decoded.endswith(step["call"])
        assert tokenizer.decode(enc["input_ids"][pos:]) in step["call"]
        for earlier in calls[:i]:
            assert earlier.to_json() in decoded
        for later in calls[i + 1:]:
            assert later.to_json() not in decoded
        assert decoded.startswith(prompt_text(tokenizer, PROMPT))


def test_left_truncation_keeps_the_call_and_its_label(tokenizer):
    call = formats.ToolCall("get_weather", {"city": "Paris"}).to_json()
    full = encode_step(tokenizer, PROMPT, "<think> x </think>\n<tool_call>\n", call, label=1)
    short = encode_step(tokenizer, PROMPT, "<think> x </think>\n<tool_call>\n", call, label=1, max_length=40)
    assert len(short["input_ids"]) == 40
    assert short["input_ids"] == full["input_ids"][-40:]
    assert label_position(short["labels"]) == 39 and short["labels"][39] == 1


MANY_TOOLS = [{"name": f"tool_{i}", "description": f"Tool number {i}, which does thing {i}.",
               "parameters": {"type": "object", "properties": {f"arg_{i}": {"type": "integer"}},
                              "required": [f"arg_{i}"]}} for i in range(30)]
LONG_PROMPT = formats.prompt_messages(MANY_TOOLS, [{"role": "user", "content": "Run tool 0 with 3."}])


def test_listed_tool_is_the_inverse_of_render_tool():
    text = formats.system_prompt([*MANY_TOOLS, {"name": "tool_1", "description": "Listed again, later.",
                                                "parameters": {"type": "object", "properties": {}}}])
    assert formats.listed_tool(text, "tool_0") == formats.render_tool(1, MANY_TOOLS[0])
    assert formats.listed_tool(text, "tool_2") == formats.render_tool(3, MANY_TOOLS[2])  # not tool_20..29
    assert formats.listed_tool(text, "tool_1") == "31. Name: tool_1\nDescription: Listed again, later.\nParameters: {}"
    assert formats.listed_tool(text, "tool_99") is None
    assert formats.listed_tool(text, "tool_.") is None  # a name is matched literally


def test_a_cut_step_keeps_the_called_tools_entry(tokenizer):
    prefix = "<think> x </think>\n<tool_call>\n"
    call = formats.ToolCall("tool_0", {"arg_0": 3}).to_json()
    plain = encode_step(tokenizer, LONG_PROMPT, prefix, call, label=0, max_length=120)
    kept = encode_step(tokenizer, LONG_PROMPT, prefix, call, label=0, max_length=120, keep_called_tool=True)
    assert len(kept["input_ids"]) == 120 and kept["labels"][119] == 0 and label_position(kept["labels"]) == 119
    decoded = tokenizer.decode(kept["input_ids"])
    assert decoded.startswith("The called tool:\n" + formats.render_tool(1, MANY_TOOLS[0]) + "\n")
    assert decoded.endswith(call)
    assert "Name: tool_0" not in tokenizer.decode(plain["input_ids"])  # the plain cut loses it
    head = len(tokenizer(decoded.split(formats.render_tool(1, MANY_TOOLS[0]) + "\n")[0] + formats.render_tool(
        1, MANY_TOOLS[0]) + "\n", add_special_tokens=False)["input_ids"])
    assert kept["input_ids"][head:] == plain["input_ids"][-(120 - head):]  # then the plain window's tail
    # a tool the prompt does not list is named as such; an unparseable call gets the plain cut
    ghost = encode_step(tokenizer, LONG_PROMPT, prefix, '{"name": "ghost", "parameters": {}}', max_length=120,
                        keep_called_tool=True)
    assert tokenizer.decode(ghost["input_ids"]).startswith("The called tool ghost is not in the tool list.\n")
    broken = '{"name": "tool_0", "parameters": '
    assert (encode_step(tokenizer, LONG_PROMPT, prefix, broken, max_length=120, keep_called_tool=True)
            == encode_step(tokenizer, LONG_PROMPT, prefix, broken, max_length=120))


def test_keeping_the_called_tool_changes_nothing_where_it_is_in_the_window(tokenizer):
    prefix = "<think> x </think>\n<tool_call>\n"
    last = formats.ToolCall("tool_29", {"arg_29": 1}).to_json()  # listed last, next to the dialogue
    text = prompt_text(tokenizer, LONG_PROMPT) + prefix + last
    after = len(tokenizer(text[text.index("30. Name: tool_29"):], add_special_tokens=False)["input_ids"])
    for max_length in (None, 10_000, after + 2):  # the last: a window that just holds tool_29's entry
        assert (encode_step(tokenizer, LONG_PROMPT, prefix, last, 1, max_length, keep_called_tool=True)
                == encode_step(tokenizer, LONG_PROMPT, prefix, last, 1, max_length))
    first = formats.ToolCall("tool_0", {"arg_0": 3}).to_json()  # steps that fit are never changed
    assert (encode_step(tokenizer, LONG_PROMPT, prefix, first, 1, 10_000, keep_called_tool=True)
            == encode_step(tokenizer, LONG_PROMPT, prefix, first, 1))


def test_scoring_marks_the_position_and_empty_calls_fail(tokenizer):
    enc = encode_step(tokenizer, PROMPT, "", '{"name": "x", "parameters": {}}')
    assert enc["labels"][-1] == 1
    with pytest.raises(ValueError, match="non-empty call"):
        encode_step(tokenizer, PROMPT, "", "")
    with pytest.raises(ValueError, match="exactly one"):
        label_position([IGNORE, 1, 0])


def test_a_loaded_trm_sits_where_the_hardware_says(tmp_path, tiny_model_dir, monkeypatch):
    from toolrl.hardware import default_device
    from toolrl.trm.model import init_trm, load_trm, save_trm

    assert default_device() in ("cuda", "cpu")
    model, tokenizer = init_trm(tiny_model_dir)
    save_trm(model, tokenizer, tmp_path / "trm", {"max_length": 64})
    # a device no model lands on by itself stands in for the GPU: the scorer must be moved to it
    monkeypatch.setattr("toolrl.hardware.default_device", lambda: "meta")
    loaded, _, _ = load_trm(tmp_path / "trm")
    assert loaded.device.type == "meta" and not loaded.training
    assert load_trm(tmp_path / "trm", device="cpu")[0].device.type == "cpu"


def test_right_padded_training_batches_score_as_with_their_mask(tiny_model_dir):
    """The trm stage's model drops a right-padded batch's mask (toolrl.training.right_padding): the scores
    at the labelled positions, and so the loss, are those of the masked pass (fp32, relative 1e-5)."""
    import torch
    from transformers import DataCollatorForTokenClassification
    from trm_fixtures import context_sensitive_trm

    from toolrl.training.right_padding import causal_without_right_padding_mask

    model, tokenizer = context_sensitive_trm(tiny_model_dir)
    calls = ['{"name": "get_weather", "parameters": {"city": "Paris"}}', '{"name": "x", "parameters": {}}']
    rows = [encode_step(tokenizer, PROMPT, prefix, call, label)
            for prefix, call, label in [("", calls[0], 1), ("<think> Two cities, one call each. </think>", calls[1], 0)]]
    batch = DataCollatorForTokenClassification(tokenizer)(rows)
    labels = batch.pop("labels")
    assert not bool(batch["attention_mask"].all())
    with torch.no_grad():
        masked = model(**batch).logits[labels != IGNORE]
        causal_without_right_padding_mask(model)
        seen: list[object] = []
        model.register_forward_pre_hook(lambda _m, _a, kw: seen.append(kw.get("attention_mask")), with_kwargs=True)
        unmasked = model(**batch).logits[labels != IGNORE]
    assert seen == [None]
    torch.testing.assert_close(unmasked, masked, rtol=1e-5, atol=1e-6)
