"""The reward never breaks: arbitrary text, tag soup, huge inputs and deep JSON, for every variant,
step and range setting, never raise and always land inside the variant's range at that step. Also
checks the two fast paths against what they replace: the format checks against the anchored regular
expressions that define the format, the call-line parser against `json.loads`, and the cut of the
call block against the split-based definitions it replaces.
"""

from __future__ import annotations

import json
import math
import re

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from toolrl.config import RewardParams
from toolrl.rewards import VARIANTS, Scorer
from toolrl.rewards.components import format_ok
from toolrl.rewards.parsing import parse_block, predicted_calls

WEATHER = '{"name": "get_weather", "parameters": {"city": "Paris", "days": 3}}'
SEARCH = '{"name": "search", "parameters": {"q": "cats", "limit": [1, {"a": null}]}}'
GTS = [
    f"<think> t </think>\n<tool_call>\n{WEATHER}\n</tool_call>",
    f"<think> t </think>\n<tool_call>\n{WEATHER}\n{SEARCH}\n{WEATHER}\n</tool_call>",
    f"<think> t </think>\n<tool_call>\n{SEARCH}\n</tool_call>\n<response> ok </response>",
    "<think> t </think>\n<response> hello </response>",
    "<think> t </think>",
    '<think> t </think>\n<tool_call>\n{"name": "noargs", "parameters": {}}\n</tool_call>',
]
TOOLS = [
    {"name": "get_weather", "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "enum": ["Paris", "London"]}, "days": {"type": "integer"}}}},
    {"name": "search", "parameters": {"type": "object", "properties": {
        "q": {"type": "string"}, "limit": {"type": "array", "items": {"type": "number"}}}}},
]
PIECES = [
    "<think>", "</think>", "<tool_call>", "</tool_call>", "<response>", "</response>", "\n", "\n\n", " ",
    "word", WEATHER, SEARCH, '{"name": "get_weather"', '"parameters": {', '{"name": ["x"]}', "[", "]",
    "{", "}", '"', ":", ",", "null", "NaN", "1e999", "-0", "true", "\ufeff", "\xa0", "\r", "\t", "\x1c",
    '{"name": "get_weather", "parameters": {"city": "paris", "days": "3"}}',
    '{"name": "get_weather", "parameters": [1]}', '{"name": "search"}', "9" * 5000,
]

tag_soup = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)
huge = st.tuples(tag_soup, st.sampled_from(PIECES + ["word "]), st.integers(1_000, 60_000), tag_soup).map(
    lambda t: t[0] + t[1] * t[2] + t[3]
)


def _deep(depth: int, kind: str) -> str:
    if kind == "array":
        inner = "[" * depth + "]" * depth
    elif kind == "object":
        inner = '{"a": ' * depth + "1" + "}" * depth
    else:  # a deep value inside an otherwise valid call
        inner = '{"name": "get_weather", "parameters": {"city": ' + "[" * depth + "]" * depth + ', "days": 3}}'
    return f"<think> x </think>\n<tool_call>\n{inner}\n</tool_call>"


deep_json = st.builds(_deep, st.integers(1, 100_000), st.sampled_from(["array", "object", "value"]))
completions = st.one_of(st.text(max_size=400), tag_soup, huge, deep_json)


@st.composite
def reward_params(draw) -> RewardParams | None:
    if draw(st.booleans()):
        return None
    values = {}
    for part in ("format", "correctness", "length"):
        if draw(st.booleans()):
            a, b = sorted(draw(st.tuples(*[st.floats(-10, 10, allow_nan=False)] * 2)))
            values[f"{part}_min"], values[f"{part}_max"] = a, b
    weights = draw(st.dictionaries(st.sampled_from(["format", "correctness", "length"]), st.floats(-3, 3)))
    return RewardParams(weights=weights, **values)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    completion=completions,
    gt=st.sampled_from(GTS),
    variant=st.sampled_from(sorted(VARIANTS)),
    step=st.integers(0, 5_000),
    params=reward_params(),
    tools=st.sampled_from([None, TOOLS, json.dumps(TOOLS)]),
)
def test_never_raises_and_stays_in_range(completion, gt, variant, step, params, tools):
    try:
        scorer = Scorer(variant, params)
    except ValueError:  # a drawn range inverted once the variant's defaults fill the other end
        assume(False)
    s = scorer(completion, gt, step, tools)
    r = scorer.ranges(step)
    eps = 1e-9
    assert s.format in (r.format.min, r.format.max)
    assert s.correctness == 0.0 or r.correctness.min - eps <= s.correctness <= r.correctness.max + eps
    if r.length is None:
        assert s.length == 0.0
    else:
        assert r.length.min - eps <= s.length <= r.length.max + eps
    lo, hi = scorer.bounds(step)
    assert all(math.isfinite(x) for x in s)
    assert lo - eps <= s.total <= hi + eps


# The format's definition: anchored, DOTALL patterns per ground-truth structure, plus tag counts.
FORMAT_PATTERNS = {
    "response": (r"^<think>.*?</think>\n<response>.*?</response>$", ("<response>", "</response>")),
    "call": (r"^<think>.*?</think>\n<tool_call>\n.*?\n</tool_call>$", ("<tool_call>", "</tool_call>")),
    "both": (
        r"^<think>.*?</think>\n<tool_call>\n.*?\n</tool_call>\n<response>.*?</response>$",
        ("<tool_call>", "</tool_call>", "<response>", "</response>"),
    ),
    "none": (r"^<think>.*?</think>$", ()),
}


@settings(max_examples=1500, deadline=None)
@given(text=st.lists(st.sampled_from(PIECES[:12] + ["x", "\n<tool_call>\n", "</think>\n"]), max_size=25)
       .map("".join), kind=st.sampled_from(sorted(FORMAT_PATTERNS)))
def test_format_checks_equal_the_defining_patterns(text, kind):
    text = text.strip()
    pattern, once = FORMAT_PATTERNS[kind]
    expected = bool(re.search(pattern, text, re.DOTALL)) and all(text.count(t) == 1 for t in once)
    assert format_ok(text, kind) is expected


@settings(max_examples=1500, deadline=None)
@given(text=st.lists(st.sampled_from(["<tool_call>", "</tool_call>", "\n", " x ", WEATHER]), max_size=12)
       .map("".join), need_close=st.booleans())
def test_call_block_cuts_equal_their_definitions(text, need_close):
    """The one block cutter (`formats.call_block_span`) in both readings, against their definitions."""
    from toolrl.formats import call_block_span
    from toolrl.rewards.parsing import call_block

    has_open, has_close = "<tool_call>" in text, "</tool_call>" in text
    # the reward: the reference's split-based cut
    expected = (text.split("<tool_call>")[1].split("</tool_call>")[0].strip()
                if has_open and (has_close or not need_close) else None)
    assert call_block(text, need_close) == expected
    # the project's: to the first closing tag after the opening one, else (need_close: None) the end
    span = call_block_span(text, need_close)
    if not has_open:
        assert span is None
        return
    body = text.split("<tool_call>", 1)[1]
    closed = "</tool_call>" in body
    if need_close and not closed:
        assert span is None
    else:
        assert text[span[0] : span[1]] == body.split("</tool_call>", 1)[0]


def _same_json(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


json_like = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(['{', '}', '[', ']', '"a"', ":", ",", " ", "\t", "\r", "\xa0", "\ufeff", "1",
                              "-", ".5", "e9", "NaN", "true", "nul", "\\u00e9", '"\\x"']), max_size=20).map("".join),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                 lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3))
    .flatmap(lambda v: st.sampled_from([json.dumps(v), " " + json.dumps(v) + "\t", json.dumps(v) + " x"])),
)


@settings(max_examples=1500, deadline=None)
@given(line=json_like)
def test_call_line_parser_equals_json_loads(line):
    line = line.replace("\n", " ")  # one line of a block
    try:
        expected = [json.loads(line)]
    except ValueError:
        expected = None
    got = parse_block(line)
    assert (got is None) == (expected is None)
    if expected is not None:
        assert _same_json(got, expected)


def test_predicted_calls_on_deep_and_huge_input_return_none_or_values():
    assert predicted_calls(_deep(100_000, "array")) is None  # too deep for json: the minimum
    assert predicted_calls(_deep(50, "array")) == [json.loads("[" * 50 + "]" * 50)]
    assert predicted_calls("<tool_call>\n" + "9" * 10_000 + "\n</tool_call>") is None  # int digit limit


_WS_CHARS = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u2003"  # ASCII and Unicode whitespace
word_soup = st.lists(st.one_of(st.sampled_from(["a", "bc", "é", "x\x1b", "<think>"]),
                               st.text(alphabet=_WS_CHARS, min_size=1, max_size=3)), max_size=30).map("".join)


@settings(max_examples=2000, deadline=None)
@given(text=st.one_of(word_soup, st.text(max_size=40)))
def test_word_count_equals_str_split(text):
    from toolrl.rewards.components import count_words

    words = len(text.split())
    assert count_words(text, cap=10**6) == words
    assert min(count_words(text, cap=2), 3) == min(words, 3)  # may stop counting past cap + 1
