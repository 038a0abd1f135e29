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


def test_scoring_marks_the_position_and_empty_calls_fail(tokenizer):
    enc = encode_step(tokenizer, PROMPT, "", '{"name": "x", "parameters": {}}')
    assert enc["labels"][-1] == 1
    with pytest.raises(ValueError, match="non-empty call"):
        encode_step(tokenizer, PROMPT, "", "")
    with pytest.raises(ValueError, match="exactly one"):
        label_position([IGNORE, 1, 0])
