"""The ToolRL reward: every component, every paper variant and every perturbation kind of the reference
vectors (exact, reorder, drop, dup, value, type, rename_key, extra_key, drop_key, extra_call,
wrong_name, no_params, no_think, response_only, both, tag_in_think, pretty, truncated, empty,
garbage), on small cases whose expected scores are worked out by hand in the comments.

Correctness = (max - min) * s / M + min, where M = 1 + sum over ground-truth calls of (1 + #params)
and s = name overlap + per matched call (key overlap + equal values). Default ranges: format [0, 1],
correctness [-3, 3], so correctness = 6 s / M - 3.
"""

from __future__ import annotations

import json
import re

import pytest

from toolrl.config import ConfigError, Params, RewardParams, load_params
from toolrl.rewards import (
    REFERENCE_VARIANTS,
    VARIANTS,
    GroundTruthError,
    RewardScores,
    Scorer,
    UnknownVariant,
    Variant,
    get_variant,
    parse_ground_truth,
    register,
    score,
)
from toolrl.rewards.components import format_ok
from toolrl.rewards.schedules import Range


def call(name: str, **params) -> str:
    return json.dumps({"name": name, "parameters": params})


def calls_block(*lines: str, think: str = "I should call a tool.") -> str:
    return f"<think> {think} </think>\n<tool_call>\n" + "\n".join(lines) + "\n</tool_call>"


WEATHER = call("get_weather", city="Paris", days=3)  # M = 1 + (1 + 2) = 4
SEARCH = call("search", q="cats", limit=5)
TRANSLATE = call("translate", text="hi", to="fr")  # GT_TWO: M = 1 + 3 + 3 = 7

GT_ONE = calls_block(WEATHER, think="Use the weather tool.")
GT_TWO = calls_block(SEARCH, TRANSLATE, think="Two tools.")
GT_RESPONSE = "<think> Just answer. </think>\n<response> Hello there. </response>"
GT_BOTH = calls_block(WEATHER) + "\n<response> Checking. </response>"
GT_THINK_ONLY = "<think> Nothing to do. </think>"

# kind -> (ground truth, completion, expected default scores at step 0: (format, correctness))
CASES = {
    # identical calls: the exact-match shortcut gives the maximum
    "exact": (GT_ONE, calls_block(WEATHER), (1.0, 3.0)),
    # names overlap 1, each call 3 of 3: s = 7 = M (no shortcut: order differs)
    "reorder": (GT_TWO, calls_block(TRANSLATE, SEARCH), (1.0, 3.0)),
    # names [search, translate] vs [search]: 1/2; search 1 + 2: s = 3.5 -> 6 * 3.5 / 7 - 3 = 0
    "drop": (GT_TWO, calls_block(SEARCH), (1.0, 0.0)),
    # names [get_weather] vs [get_weather] x2: 1/2; one copy matched 3: s = 3.5 -> 2.25
    "dup": (GT_ONE, calls_block(WEATHER, WEATHER), (1.0, 2.25)),
    # names 1, keys 1, days equal: s = 3 -> 1.5
    "value": (GT_ONE, calls_block(call("get_weather", city="London", days=3)), (1.0, 1.5)),
    # "3" != 3 under Python ==: s = 3 -> 1.5
    "type": (GT_ONE, calls_block(call("get_weather", city="Paris", days="3")), (1.0, 1.5)),
    # keys [city, days] vs [city_x, days]: 1/3; days equal: s = 1 + 1/3 + 1 -> 0.5
    "rename_key": (GT_ONE, calls_block(call("get_weather", city_x="Paris", days=3)), (1.0, 0.5)),
    # keys 2/3, both values: s = 1 + 2/3 + 2 -> 2.5
    "extra_key": (GT_ONE, calls_block(call("get_weather", city="Paris", days=3, unit="C")), (1.0, 2.5)),
    # keys 1/2, city equal: s = 2.5 -> 0.75
    "drop_key": (GT_ONE, calls_block(call("get_weather", city="Paris")), (1.0, 0.75)),
    # names 1/2, the weather call 3: s = 3.5 -> 2.25
    "extra_call": (GT_ONE, calls_block(WEATHER, call("other", q=1)), (1.0, 2.25)),
    # no name in common, nothing matched: s = 0 -> -3
    "wrong_name": (GT_ONE, calls_block(call("get_weather_v2", city="Paris", days=3)), (1.0, -3.0)),
    # names 1, keys 0 (one list empty), values 0: s = 1 -> -1.5
    "no_params": (GT_ONE, calls_block(call("get_weather")), (1.0, -1.5)),
    # the format needs <think>; the calls are exact
    "no_think": (GT_ONE, f"<tool_call>\n{WEATHER}\n</tool_call>", (0.0, 3.0)),
    # a call was expected: no block -> correctness minimum, wrong structure -> format minimum
    "response_only": (GT_ONE, "<think> x </think>\n<response> It is sunny. </response>", (0.0, -3.0)),
    # only a response was expected: the call block breaks the format; no gt call -> correctness 0
    "both": (GT_RESPONSE, calls_block(call("x")) + "\n<response>Done.</response>", (0.0, 0.0)),
    # a second <response> tag inside <think>: the tag must occur once
    "tag_in_think": (GT_RESPONSE, "<think> <response> </think>\n<response>ok</response>", (0.0, 0.0)),
    # one JSON object over several lines: every line must parse -> minimum; the layout is still fine
    "pretty": (GT_ONE, calls_block(json.dumps(json.loads(WEATHER), indent=2)), (1.0, -3.0)),
    # cut mid-call: no </tool_call>
    "truncated": (GT_ONE, calls_block(WEATHER)[:-30], (0.0, -3.0)),
    "empty": (GT_ONE, "", (0.0, -3.0)),
    "garbage": (GT_ONE, ']il<b{a"h_<h>\n}lt<tool_call>kk{"o', (0.0, -3.0)),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_default_variant_on_every_perturbation_kind(kind):
    gt, completion, (fmt, cor) = CASES[kind]
    s = score(completion, gt)
    assert s.format == pytest.approx(fmt, abs=1e-12)
    assert s.correctness == pytest.approx(cor, abs=1e-12)
    assert s.length == 0.0
    assert s.total == pytest.approx(fmt + cor, abs=1e-12)


def test_tool_call_inside_think_cuts_the_block():
    # the block starts at the first <tool_call>, inside <think>, and stops at the next one: not JSON
    completion = "<think> maybe <tool_call> here </think>\n<tool_call>\n" + WEATHER + "\n</tool_call>"
    assert score(completion, GT_ONE) == RewardScores(-3.0, 0.0, -3.0, 0.0)


# ---------------------------------------------------------------- variants, by hand

# (variant, step, kind) -> (format, correctness, length)
VARIANT_CASES = {
    # equal_max: correctness in [-1, 1] = 2 s / M - 1
    ("equal_max", 0, "value"): (1.0, 0.5, 0.0),  # 2 * 3/4 - 1
    ("equal_max", 0, "exact"): (1.0, 1.0, 0.0),
    ("equal_max", 0, "empty"): (0.0, -1.0, 0.0),
    # two_stage: before step 30 correctness is [-1, 1] (a third), format [0, 1]
    ("two_stage", 29, "value"): (1.0, 0.5, 0.0),
    ("two_stage", 29, "truncated"): (0.0, -1.0, 0.0),
    # from step 30 correctness is [-3, 3] and format [0, 0.5]
    ("two_stage", 30, "value"): (0.5, 1.5, 0.0),
    ("two_stage", 30, "exact"): (0.5, 3.0, 0.0),
    # dynamic_scale step 0: both [-2, 2]; correctness 4 * 3/4 - 2 = 1
    ("dynamic_scale", 0, "value"): (2.0, 1.0, 0.0),
    ("dynamic_scale", 0, "no_think"): (-2.0, 2.0, 0.0),
    # step 75: format max 2 - 1 * 75/150 = 1.5, min -2 + 2 * 75/150 = -1; correctness [-2.5, 2.5]
    ("dynamic_scale", 75, "exact"): (1.5, 2.5, 0.0),
    ("dynamic_scale", 75, "empty"): (-1.0, -2.5, 0.0),
    # step 300: past the horizon, format stops at [-1, 1], correctness at [-3, 3]
    ("dynamic_scale", 300, "exact"): (1.0, 3.0, 0.0),
    ("dynamic_scale", 300, "empty"): (-1.0, -3.0, 0.0),
    # strict_match: [search, translate] vs [translate, search] differ in order -> names 0; each call 3
    # -> s = 6 -> 6 * 6/7 - 3
    ("strict_match", 0, "reorder"): (1.0, 6 * 6 / 7 - 3, 0.0),
    # keys [city, days] vs [city, days, unit] are not equal -> 0; values 2: s = 3 -> 1.5
    ("strict_match", 0, "extra_key"): (1.0, 1.5, 0.0),
    ("strict_match", 0, "value"): (1.0, 1.5, 0.0),  # lists equal, as in default
    # intermediate: M = 1 + #calls; a call counts only if identical. value: names 1 -> s = 1 of 2 -> 0
    ("intermediate", 0, "value"): (1.0, 0.0, 0.0),
    # extra_call: names 1/2 + the exact call 1 = 1.5 of 2 -> 1.5
    ("intermediate", 0, "extra_call"): (1.0, 1.5, 0.0),
    ("intermediate", 0, "reorder"): (1.0, 3.0, 0.0),  # names 1 + 2 exact calls = 3 of 3
    ("intermediate", 0, "drop"): (1.0, 6 * 1.5 / 3 - 3, 0.0),  # names 1/2 + 1 = 1.5 of 3
    # coarse: all or nothing, and order-sensitive
    ("coarse", 0, "exact"): (1.0, 3.0, 0.0),
    ("coarse", 0, "value"): (1.0, -3.0, 0.0),
    ("coarse", 0, "reorder"): (1.0, -3.0, 0.0),
    ("coarse", 0, "both"): (0.0, 0.0, 0.0),  # no call in the ground truth -> 0 in every variant
    # length: "I should call a tool." = 5 words; 5/512 = 0.0098 -> rounds to 0.01
    ("length", 0, "value"): (1.0, 1.5, 0.01),
    ("length", 0, "no_think"): (0.0, 3.0, 0.0),  # no think block -> length minimum
    # dynamic_length: target 384 at step 0, 640 at step 105; 5 words -> 0.01 both
    ("dynamic_length", 0, "exact"): (1.0, 3.0, 0.01),
    ("dynamic_length", 105, "exact"): (1.0, 3.0, 0.01),
    ("default", 0, "exact"): (1.0, 3.0, 0.0),
}


@pytest.mark.parametrize("variant,step,kind", sorted(VARIANT_CASES))
def test_variants_by_hand(variant, step, kind):
    gt, completion, _ = CASES[kind]
    fmt, cor, length = VARIANT_CASES[(variant, step, kind)]
    s = score(completion, gt, variant=variant, step=step)
    assert (s.format, s.correctness, s.length) == pytest.approx((fmt, cor, length), abs=1e-12)
    assert s.total == pytest.approx(fmt + cor + length, abs=1e-12)


def test_every_reference_variant_has_a_hand_case():
    assert {v for v, _, _ in VARIANT_CASES} == set(REFERENCE_VARIANTS)


# kind -> correctness under (strict_match, intermediate, coarse), by hand like CASES (step 0):
# strict_match: a name or key list scores 1 only if equal in order; intermediate: M = 1 + #calls and a
# call earns 1 only if identical; coarse: max for an exact match, else min. Formats are as in CASES.
STRICT_INTERMEDIATE_COARSE = {
    "exact": (3.0, 3.0, 3.0),
    "reorder": (6 * 6 / 7 - 3, 3.0, -3.0),  # intermediate: names 1 + 2 identical calls of 3
    "drop": (6 * 3 / 7 - 3, 0.0, -3.0),  # strict: names unequal -> 0, search 3; inter.: 1/2 + 1 of 3
    "dup": (1.5, 1.5, -3.0),  # strict: names 0 + 3 of 4; inter.: 1/2 + 1 of 2
    "value": (1.5, 0.0, -3.0),
    "type": (1.5, 0.0, -3.0),
    "rename_key": (0.0, 0.0, -3.0),  # strict: names 1 + keys 0 + days 1 = 2 of 4
    "extra_key": (1.5, 0.0, -3.0),
    "drop_key": (0.0, 0.0, -3.0),  # strict: 1 + 0 + city 1 = 2 of 4
    "extra_call": (1.5, 1.5, -3.0),  # strict: names 0 + 3 of 4; inter.: 1/2 + 1 of 2
    "wrong_name": (-3.0, -3.0, -3.0),
    "no_params": (-1.5, 0.0, -3.0),  # strict: names 1 + keys 0 of 4; inter.: names 1 of 2
    "no_think": (3.0, 3.0, 3.0),
    "response_only": (-3.0, -3.0, -3.0),
    "both": (0.0, 0.0, 0.0),
    "tag_in_think": (0.0, 0.0, 0.0),
    "pretty": (-3.0, -3.0, -3.0),
    "truncated": (-3.0, -3.0, -3.0),
    "empty": (-3.0, -3.0, -3.0),
    "garbage": (-3.0, -3.0, -3.0),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_every_variant_on_every_perturbation_kind(kind):
    """All nine paper variants on every kind, from the hand values above and in CASES: the range
    variants are the default's normalised score u = (c + 3) / 6 mapped into their range."""
    gt, completion, (fmt, cor) = CASES[kind]
    has_call = parse_ground_truth(gt).has_call
    u = (cor + 3) / 6

    def scaled(lo, hi):
        return lo + (hi - lo) * u if has_call else 0.0

    def got(variant, step=0):
        s = score(completion, gt, variant=variant, step=step)
        return s.format, s.correctness

    approx = lambda *x: pytest.approx(x, abs=1e-12)  # noqa: E731
    strict, inter, coarse = STRICT_INTERMEDIATE_COARSE[kind]
    assert got("strict_match") == approx(fmt, strict)
    assert got("intermediate") == approx(fmt, inter)
    assert got("coarse") == approx(fmt, coarse)
    assert got("equal_max") == approx(fmt, scaled(-1, 1))
    assert got("two_stage", 29) == approx(fmt, scaled(-1, 1))
    assert got("two_stage", 30) == approx(fmt / 2, cor)
    assert got("dynamic_scale", 0) == approx(4 * fmt - 2, scaled(-2, 2))
    assert got("dynamic_scale", 150) == approx(2 * fmt - 1, cor)  # format [-1, 1], correctness [-3, 3]
    for variant in ("length", "dynamic_length"):
        s = score(completion, gt, variant=variant, step=60)
        assert (s.format, s.correctness) == approx(fmt, cor)
        assert 0.0 <= s.length <= 1.0 and s.total == pytest.approx(fmt + cor + s.length)


def thinking(words: int, tail: str = "\n<response>ok</response>") -> str:
    return "<think> " + " ".join(["w"] * words) + " </think>" + tail


@pytest.mark.parametrize(
    "variant,step,words,expected",
    [
        ("length", 0, 128, 0.25),  # 128 / 512
        ("length", 0, 511, 1.0),  # 0.998 rounds to 1.0
        ("length", 0, 5000, 1.0),  # capped
        ("length", 0, 0, 0.0),
        ("dynamic_length", 0, 96, 0.25),  # 96 / 384
        ("dynamic_length", 105, 160, 0.25),  # 160 / 640
        ("dynamic_length", 210, 224, 0.25),  # target keeps growing: 896 at step 210
    ],
)
def test_length_reward(variant, step, words, expected):
    s = score(thinking(words), GT_RESPONSE, variant=variant, step=step)
    assert s.length == pytest.approx(expected, abs=1e-12)
    assert s.format == 1.0 and s.correctness == 0.0


def test_length_counts_the_last_think_block_only():
    text = "<think> " + "w " * 600 + "</think> <think> e f g h i j </think>\n<response>x</response>"
    params = RewardParams(variant="length")
    # 6 words / 512 = 0.0117 -> 0.01 (the 600 words of the first block do not count)
    assert score(text, GT_RESPONSE, params=params).length == 0.01
    assert score("<think> " + "w " * 256, GT_RESPONSE, variant="length").length == 0.0  # no </think>


# ---------------------------------------------------------------- format rules


@pytest.mark.parametrize(
    "kind,text,ok",
    [
        ("response", "<think>a</think>\n<response>b</response>", True),
        ("response", "<think></think>\n<response></response>", True),
        ("response", "<think> a </think> b </think>\n<response>x</response>", True),  # .*? spans tags
        ("response", "<think>a</think>\n\n<response>b</response>", False),  # exactly one newline
        ("response", "<think>a</think><response>b</response>", False),
        ("response", "<think>a</think>\n<response>b</response> tail", False),
        ("response", "<think>a</think>\n<response>b</response><response>c</response>", False),
        ("call", "<think>a</think>\n<tool_call>\nX\n</tool_call>", True),
        ("call", "<think>a</think>\n<tool_call>\n\n</tool_call>", True),  # empty line between newlines
        ("call", "<think>a</think>\n<tool_call>\n</tool_call>", False),  # needs both newlines
        ("call", "<think>a</think>\n<tool_call>X</tool_call>", False),
        ("call", "<think>a</think>\n<tool_call>\nX\n</tool_call>\n<response>r</response>", False),
        ("both", "<think>a</think>\n<tool_call>\nX\n</tool_call>\n<response>r</response>", True),
        ("both", "<think>a</think>\n<tool_call>\nX\n</tool_call>", False),
        ("both", "<think>a</think>\n<response>r</response>", False),
        ("none", "<think>a</think>", True),
        ("none", "<think></think>", True),
        ("none", "<think>a</think>\n<response>r</response>", False),
        ("none", "<think>", False),
        ("none", "<think/think>", False),
    ],
)
def test_format_rules(kind, text, ok):
    assert format_ok(text, kind) is ok


def test_format_ignores_surrounding_whitespace():
    assert score("\n  <think>a</think>\n<response>b</response>\n\n", GT_RESPONSE).format == 1.0
    assert score("<think>a</think>", GT_THINK_ONLY).format == 1.0
    assert score(calls_block(WEATHER) + "\n<response> x </response>", GT_BOTH).total == 4.0


# ---------------------------------------------------------------- the reference's quirks


def test_bool_equals_int_and_int_equals_float_under_python_equality():
    gt = calls_block(call("f", n=1, x=2.0))
    assert score(calls_block(call("f", n=True, x=2)), gt).correctness == 3.0  # True == 1, 2 == 2.0


def test_malformed_predicted_calls_give_the_minimum_where_the_reference_would_fail():
    not_objects = calls_block(WEATHER, "[1, 2]")
    no_name = calls_block(WEATHER, '{"parameters": {}}')
    matched_without_parameters = calls_block('{"name": "get_weather"}')
    params_not_object = calls_block('{"name": "get_weather", "parameters": [1]}')
    for text in (not_objects, no_name, matched_without_parameters, params_not_object):
        assert score(text, GT_ONE).correctness == -3.0, text
    # an unmatched call is never looked at: its missing parameters do not matter (s = 0.5 + 3)
    assert score(calls_block(WEATHER, '{"name": "other"}'), GT_ONE).correctness == 2.25
    # intermediate compares whole calls only, so it never reads "parameters": names 1 of M = 2
    assert score(matched_without_parameters, GT_ONE, variant="intermediate").correctness == 0.0


def test_unhashable_name_fails_the_overlap_but_not_strict_matching():
    text = calls_block('{"name": ["search"], "parameters": {}}', TRANSLATE)
    assert score(text, GT_TWO).correctness == -3.0  # the name overlap needs hashable names
    # strict lists compare with ==, never hash: names 0, translate 1 + 2 -> s = 3 of 7
    assert score(text, GT_TWO, variant="strict_match").correctness == pytest.approx(6 * 3 / 7 - 3)


def test_strict_match_is_order_sensitive_for_parameter_names():
    swapped = calls_block(call("get_weather", days=3, city="Paris"))
    assert score(swapped, GT_ONE).correctness == 3.0  # overlap 1 (and dicts compare equal)
    # dict equality ignores order, so the exact-match shortcut still fires
    assert score(swapped, GT_ONE, variant="strict_match").correctness == 3.0
    # with a changed value no shortcut: keys [city, days] vs [days, city] -> 0; city 1 -> s = 2
    changed = calls_block(call("get_weather", days=4, city="Paris"))
    assert score(changed, GT_ONE, variant="strict_match").correctness == pytest.approx(6 * 2 / 4 - 3)
    assert score(changed, GT_ONE).correctness == pytest.approx(6 * 3 / 4 - 3)


def test_greedy_matching_is_in_ground_truth_order_first_best_wins():
    # two ground-truth calls of one tool; the first takes the best candidate even if it leaves the
    # second with less (optimal assignment is test_rewards_extras.py's subject)
    gt = calls_block(call("f", a=1), call("f", a=1, b=2))
    pd = calls_block(call("f", a=1, b=2), call("f", a=1, c=5))
    # f(a=1) vs pd1: keys 1/2 + 1 = 1.5; vs pd2: 1/2 + 1 = 1.5: tie, pd1 first.
    # f(a=1,b=2) vs pd2: keys 1/3 + a = 4/3. names 1. s = 1 + 1.5 + 4/3; M = 1 + 2 + 3 = 6
    assert score(pd, gt).correctness == pytest.approx(6 * (1 + 1.5 + 4 / 3) / 6 - 3)


def test_lines_of_the_block_are_json_loads_lines():
    # a blank line between calls is not JSON; blank lines around the block are stripped
    assert score(calls_block(WEATHER, "", SEARCH), GT_ONE).correctness == -3.0
    assert score(calls_block("\n" + WEATHER + "  \n"), GT_ONE).correctness == 3.0
    # JSON whitespace around a line is fine: names 1/2 + weather 3 -> 2.25
    assert score(calls_block(WEATHER, " \t" + call("other") + "\r "), GT_ONE).correctness == 2.25
    assert score(calls_block(WEATHER, "\ufeff" + call("other")), GT_ONE).correctness == -3.0  # a BOM
    assert score(calls_block(WEATHER, "\xa0" + call("other")), GT_ONE).correctness == -3.0  # not JSON ws
    assert score(calls_block(WEATHER + " x"), GT_ONE).correctness == -3.0  # extra data
    assert score(calls_block(call("get_weather", city="Paris", days=float("nan"))), GT_ONE).correctness \
        == pytest.approx(1.5)  # NaN parses (as json.loads does) and equals nothing


def test_no_call_in_ground_truth_gives_zero_correctness_in_every_variant():
    for name in VARIANTS:
        for text in ("", calls_block(WEATHER), "<think>a</think>\n<response>b</response>"):
            assert score(text, GT_RESPONSE, variant=name, step=40).correctness == 0.0
            assert score(text, GT_THINK_ONLY, variant=name, step=40).correctness == 0.0


# ---------------------------------------------------------------- params, registry, API


def test_params_ranges_and_weights():
    params = RewardParams(correctness_max=10.0, correctness_min=0.0, format_max=2.0,
                          weights={"format": 0.5, "correctness": 2.0})
    _, completion, _ = CASES["value"]
    s = score(completion, GT_ONE, params=params)
    assert s.format == 2.0
    assert s.correctness == pytest.approx(10 * 3 / 4)
    assert s.total == pytest.approx(0.5 * 2.0 + 2.0 * 7.5)


def test_unset_ranges_come_from_the_variant():
    assert Scorer("equal_max").ranges(0).correctness == Range(-1.0, 1.0)
    assert Scorer("equal_max", RewardParams(correctness_max=2.0)).ranges(0).correctness == Range(-1.0, 2.0)
    assert Scorer(params=RewardParams(variant="equal_max")).variant.name == "equal_max"
    assert Scorer("default").ranges(0).length is None and Scorer("length").ranges(0).length == Range(0, 1)
    assert Scorer("length").components == ("format", "correctness", "length")
    assert Scorer("coarse").components == ("format", "correctness")


def test_bad_params_are_errors_naming_the_key():
    with pytest.raises(ConfigError, match="unknown reward variant 'nope'"):
        load_params_from({"grpo": {"reward": {"variant": "nope"}}})
    with pytest.raises(ConfigError, match="weights has unknown components"):
        load_params_from({"grpo": {"reward": {"weights": {"formatting": 1.0}}}})
    with pytest.raises(ConfigError, match="format_min .* is above format_max"):
        load_params_from({"grpo": {"reward": {"format_min": 2.0, "format_max": 1.0}}})
    with pytest.raises(ConfigError, match="correctness_min .* above"):  # once defaults are filled in
        Scorer("equal_max", RewardParams(correctness_min=2.0))
    assert Params().grpo.reward.variant == "default"


def load_params_from(raw: dict) -> Params:
    from toolrl.config import validate

    return validate(raw)


def test_params_file_overrides(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("grpo:\n  reward:\n    variant: coarse\n")
    p = load_params(f, ["grpo.reward.correctness_max=5", "grpo.reward.weights={format: 2}"])
    scorer = Scorer(params=p.grpo.reward)
    assert scorer.variant.name == "coarse"
    assert scorer.ranges(0).correctness == Range(-3.0, 5.0)
    assert scorer.weights == (2.0, 1.0, 1.0)


def test_registry():
    assert set(REFERENCE_VARIANTS) == {
        "default", "equal_max", "two_stage", "dynamic_scale", "strict_match", "intermediate", "coarse",
        "length", "dynamic_length",
    }
    with pytest.raises(UnknownVariant, match="choose one of default"):
        get_variant("finegrained")
    with pytest.raises(ValueError, match="already registered"):
        register(Variant("default", "again"))
    custom = register(Variant("test_only_wide", "wider correctness", correctness_range=Range(-5.0, 5.0)))
    try:
        assert score(calls_block(WEATHER), GT_ONE, variant="test_only_wide").correctness == 5.0
    finally:
        VARIANTS.pop(custom.name)


def test_step_and_inputs_validation():
    with pytest.raises(ValueError, match="non-negative integer"):
        score("", GT_ONE, step=-1)
    with pytest.raises(GroundTruthError, match="line 2 is not JSON"):
        score("", calls_block(WEATHER, "{oops"))
    with pytest.raises(GroundTruthError, match=re.escape('not {"name": str')):
        score("", calls_block('{"name": "f"}'))
    with pytest.raises(TypeError, match="completion must be"):
        score(42, GT_ONE)


def test_chat_message_completions_and_ground_truth_cache():
    messages = [{"role": "assistant", "content": calls_block(WEATHER)}]
    assert score(messages, GT_ONE).total == 4.0
    assert parse_ground_truth(GT_ONE) is parse_ground_truth(GT_ONE)


def test_multi_message_completions_are_scored_on_all_assistant_turns_in_order():
    from toolrl.formats import assistant_text

    turns = [{"role": "assistant", "content": "<think> I should call a tool. </think>"},
             {"role": "tool", "content": "<tool_call>\nnot the policy's text\n</tool_call>"},
             {"role": "assistant", "content": f"<tool_call>\n{WEATHER}\n</tool_call>"}]
    assert assistant_text(turns) == calls_block(WEATHER)
    assert score(turns, GT_ONE) == score(calls_block(WEATHER), GT_ONE) == (4.0, 1.0, 3.0, 0.0)
    # one message, as in every single-turn completion: exactly its content (the reference's reading)
    assert assistant_text([{"role": "assistant", "content": " x "}]) == " x "
    assert assistant_text({"content": "x"}) == "x" and assistant_text([]) == ""
    assert assistant_text([{"role": "assistant", "content": None}, {"role": "assistant", "content": "y"}]) == "y"
    with pytest.raises(TypeError, match="completion must be"):
        assistant_text(["not a message"])


def test_bounds_contain_every_case():
    for name in REFERENCE_VARIANTS:
        scorer = Scorer(name)
        for step in (0, 29, 30, 75, 150, 400):
            lo, hi = scorer.bounds(step)
            for gt, completion, _ in CASES.values():
                assert lo - 1e-12 <= scorer(completion, gt, step).total <= hi + 1e-12


def test_nan_is_equal_inside_containers_but_not_as_a_value():
    # json.loads returns one shared NaN object and container == treats identical objects as equal,
    # so the reference's exact-match check accepts an identical call with NaN...
    gt = calls_block('{"name": "f", "parameters": {"x": NaN, "y": 1}}')
    assert score(gt, gt).correctness == 3.0
    # ...while the per-value check uses float == directly: NaN != NaN. s = 1 + 1 + 0 of M = 4
    pd = calls_block('{"name": "f", "parameters": {"x": NaN, "y": 2}}')
    assert score(pd, gt).correctness == 0.0


def test_ground_truth_must_be_text():
    with pytest.raises(GroundTruthError, match="must be a string, got list"):
        score("", [GT_ONE])
