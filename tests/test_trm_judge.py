"""The LLM judge labeler: answer parsing, and end to end against a real local OpenAI-compatible
server (`transformers serve`) serving tiny models: one taught to answer in the judge's format (the
success path), the untrained one (malformed answers), a timeout and a refused connection."""

from __future__ import annotations

from collections import Counter

import pytest

from toolrl import formats
from toolrl.config import JudgeParams, TrmDataParams
from toolrl.trm.judge import Judge, JudgeFormatError, chat_url, load_prompt, parse_judgement, render_prompt

TOOLS = [{"name": "get_weather", "description": "Weather in a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
PROMPT = formats.prompt_messages(TOOLS, [{"role": "user", "content": "Weather in Paris?"}])
REFERENCE = formats.ground_truth("look up", [formats.ToolCall("get_weather", {"city": "Paris"})], None)
ANSWER = '{"necessity": 1, "quality": 0, "reason": "wrong city"}'
SHORT_TEMPLATE = "Grade this call: {{call}}"  # short prompts keep the taught tiny judge cheap to train


def step(city: str) -> dict:
    call = formats.ToolCall("get_weather", {"city": city}).to_json()
    return {"id": f"p/s0/{city}", "prompt_id": "p", "prompt": PROMPT, "prefix": "<think> x </think>\n<tool_call>\n",
            "call": call, "rule_label": int(city == "Paris")}


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize("text, expected", [
    ('{"necessity": 1, "quality": 1, "reason": "fine"}', (1, 1)),
    ('Sure! ```json\n{"Necessity": "yes", "Quality": "no"}\n```', (1, 0)),
    ('{"necessity": true, "quality": false}', (1, 0)),
    ('first {"necessity": 0, "quality": 0} then {"necessity": 1, "quality": 1}', (1, 1)),  # the last one wins
    ('{"note": {"x": 1}} {"necessity": 1.0, "quality": 0.0}', (1, 0)),
    ("Necessity: yes\nQuality: 0", (1, 0)),
    ("necessity = false, quality = true", (0, 1)),
])
def test_parse_judgement_accepts_common_shapes(text, expected):
    v = parse_judgement(text)
    assert (v.necessity, v.quality) == expected and v.label == expected[0] * expected[1]


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("I think this call is fine.", "necessity or quality"),
    ('{"necessity": 1}', "quality"),
    ('{"necessity": 2, "quality": 1}', "expected 0/1"),
    ('{"necessity": "maybe", "quality": 1}', "expected 0/1"),
])
def test_parse_judgement_rejects_what_it_cannot_read(text, message):
    with pytest.raises(JudgeFormatError, match=message):
        parse_judgement(text)


def test_prompt_and_url():
    text = render_prompt(load_prompt(), step("Lima"), TOOLS, REFERENCE)
    assert '"Lima"' in text and "get_weather" in text and "Weather in Paris?" in text and "{{" not in text
    assert chat_url("http://h:1") == "http://h:1/v1/chat/completions"
    assert chat_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    with pytest.raises(ValueError, match="base_url is empty"):
        Judge(JudgeParams())
    with pytest.raises(FileNotFoundError, match="prompt_file"):
        Judge(JudgeParams(base_url="http://127.0.0.1:9", prompt_file="/nonexistent/judge.md"))


# ---------------------------------------------------------------- against a real server


@pytest.fixture(scope="module")
def judge_models(tiny_model_dir, tmp_path_factory):
    """(taught judge folder, untrained folder, template file)."""
    from trm_fixtures import overfit

    root = tmp_path_factory.mktemp("judge")
    template = root / "judge.md"
    template.write_text(SHORT_TEMPLATE)
    pairs = [([{"role": "user", "content": SHORT_TEMPLATE.replace("{{call}}", step(c)["call"])}], ANSWER)
             for c in ("Lima", "Oslo", "Rome", "Kyiv")]
    taught = overfit(tiny_model_dir, root / "taught", pairs, steps=160, lr=1e-2)
    return taught, tiny_model_dir, template


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from trm_fixtures import LocalServer

    srv = LocalServer(tmp_path_factory.mktemp("serve") / "serve.log")
    yield srv
    srv.stop()


@pytest.mark.slow
def test_judge_end_to_end(server, judge_models):
    from toolrl.trm.data import apply_judge

    taught, untrained, template = judge_models
    good = JudgeParams(base_url=server.base_url, model=str(taught), prompt_file=str(template), max_retries=0,
                       timeout_s=120, max_tokens=40)
    with Judge(good) as judge:
        outcome = judge.label(step("Lima"), TOOLS, REFERENCE)
    assert outcome.error is None, outcome
    assert (outcome.verdict.necessity, outcome.verdict.quality) == (1, 0)
    assert outcome.verdict.reason.startswith("judge")

    # the untrained model answers noise: quarantined with the reason and the raw answer, no crash
    bad = good.model_copy(update={"model": str(untrained), "max_tokens": 12})
    with Judge(bad) as judge:
        outcome = judge.label(step("Lima"), TOOLS, REFERENCE)
    assert outcome.verdict is None and outcome.error.startswith("malformed judge answer")
    assert isinstance(outcome.raw, str) and outcome.attempts == 1

    # the data stage's judge pass: labelled records and quarantine entries, nothing lost
    records = {"p": {"tools": TOOLS, "ground_truth": REFERENCE}}
    stats: Counter = Counter()
    steps = [{**step(c), "label": 0, "labeler": "rule"} for c in ("Lima", "Oslo")]
    kept, quarantine = apply_judge(steps, records, TrmDataParams(labeler="judge", judge=good), stats)
    assert [r["labeler"] for r in kept] == ["judge", "judge"] and all(r["label"] == 0 for r in kept)
    assert quarantine == [] and stats["judge_labelled"] == 2
    kept, quarantine = apply_judge(steps, records, TrmDataParams(labeler="judge", judge=bad), stats)
    assert kept == [] and [q["id"] for q in quarantine] == [s["id"] for s in steps]
    assert all(q["reason"].startswith("malformed judge answer") for q in quarantine)


@pytest.mark.slow
def test_judge_timeout_and_refused_connection(server, judge_models):
    _, untrained, template = judge_models
    slept: list[float] = []
    slow = JudgeParams(base_url=server.base_url, model=str(untrained), prompt_file=str(template), timeout_s=0.05,
                       max_retries=1, max_tokens=200)
    with Judge(slow, sleep=slept.append) as judge:
        outcome = judge.label(step("Lima"), TOOLS, REFERENCE)
    assert outcome.verdict is None and "timeout after 0.05s (2 attempts)" in outcome.error
    assert slept == [0.5]  # one backoff before the retry

    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    refused = JudgeParams(base_url=f"http://127.0.0.1:{closed}", max_retries=2, timeout_s=5)
    with Judge(refused, sleep=slept.append) as judge:
        outcome = judge.label(step("Lima"), TOOLS, REFERENCE)
    assert outcome.verdict is None and "connection failed" in outcome.error and outcome.attempts == 3
    assert slept == [0.5, 0.5, 1.0]
