"""Call spans, rule labels, hard negatives and balance."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from toolrl import formats
from toolrl.trm.calls import call_spans
from toolrl.trm.labels import ground_truth_calls, rule_labels
from toolrl.trm.negatives import balance, hard_negatives

TOOLS = [
    {"name": "get_weather", "description": "Weather in a city.",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                    "required": ["city"]}},
    {"name": "convert", "description": "Convert currency.",
     "parameters": {"type": "object", "properties": {"amount": {"type": "number"}, "to": {"type": "string"}},
                    "required": ["amount", "to"]}},
]
W = formats.ToolCall("get_weather", {"city": "Paris"})
C = formats.ToolCall("convert", {"amount": 10, "to": "USD"})


def completion(*lines: str, close: bool = True) -> str:
    return "<think> t </think>\n<tool_call>\n" + "\n".join(lines) + ("\n</tool_call>" if close else "")


def verdicts(text: str, gt: list[formats.ToolCall]) -> list[tuple[int, int, str]]:
    return [(v.necessity, v.quality, v.reason) for v in rule_labels(call_spans(text), gt, TOOLS)]


def test_spans_cover_each_call_line_exactly():
    text = completion(W.to_json(), "  " + C.to_json() + "  ", "", "not json")
    spans = call_spans(text)
    assert [s.text for s in spans] == [W.to_json(), C.to_json(), "not json"]
    for s in spans:
        assert text[s.start:s.end] == s.text
    assert spans[0].call == W and spans[1].call == C
    assert spans[2].call is None and "not valid JSON" in spans[2].error


def test_no_block_no_spans_and_open_block_runs_to_the_end():
    assert call_spans("<think> x </think>\n<response> hi </response>") == []
    spans = call_spans(completion(W.to_json(), '{"name": "conv', close=False))
    assert [s.ok for s in spans] == [True, False]


def test_correct_calls_are_positive_in_any_order():
    assert verdicts(completion(C.to_json(), W.to_json()), [W, C]) == [(1, 1, "ok"), (1, 1, "ok")]


def test_schema_aware_values():
    # "10" for a number and 10.0 are the same value under the schema
    call = formats.ToolCall("convert", {"amount": "10", "to": "USD"})
    assert verdicts(completion(call.to_json()), [C]) == [(1, 1, "ok")]


def test_each_failure_has_its_reason():
    wrong_value = formats.ToolCall("get_weather", {"city": "Lyon"})
    missing = formats.ToolCall("convert", {"amount": 10})
    invented = formats.ToolCall("get_weather", {"city": "Paris", "units": "C"})
    unknown = formats.ToolCall("get_news", {})
    assert verdicts(completion(wrong_value.to_json()), [W]) == [(1, 0, "wrong_arguments")]
    assert verdicts(completion(missing.to_json()), [C]) == [(1, 0, "wrong_arguments")]
    assert verdicts(completion(invented.to_json()), [W]) == [(1, 0, "wrong_arguments")]
    assert verdicts(completion(unknown.to_json()), [W]) == [(0, 0, "unknown_tool")]
    assert verdicts(completion("{broken"), [W])[0][:2] == (0, 0)
    assert verdicts(completion(W.to_json()), [])[0] == (0, 1, "not_needed")  # irrelevance: no call needed


def test_repeat_is_not_needed_unless_the_reference_repeats_it():
    assert verdicts(completion(W.to_json(), W.to_json()), [W]) == [(1, 1, "ok"), (0, 1, "repeat")]
    assert verdicts(completion(W.to_json(), W.to_json()), [W, W]) == [(1, 1, "ok"), (1, 1, "ok")]


def test_a_call_aligns_once():
    lima = formats.ToolCall("get_weather", {"city": "Lima"})
    assert verdicts(completion(W.to_json(), lima.to_json()), [lima, W]) == [(1, 1, "ok"), (1, 1, "ok")]
    # a wrong call first does not take the reference call of the right one that follows
    assert verdicts(completion(lima.to_json(), W.to_json()), [W]) == [(0, 1, "not_needed"), (1, 1, "ok")]
    # two wrong calls of one tool for one reference call: the first is the attempt, the second not needed
    oslo = formats.ToolCall("get_weather", {"city": "Oslo"})
    assert verdicts(completion(lima.to_json(), oslo.to_json()), [W]) == [(1, 0, "wrong_arguments"),
                                                                         (0, 1, "not_needed")]


def test_ground_truth_calls_from_a_record():
    rec = {"id": "x", "ground_truth": formats.ground_truth("t", [W, C], None)}
    assert ground_truth_calls(rec) == [W, C]
    with pytest.raises(ValueError, match="no ground_truth"):
        ground_truth_calls({"id": "y"})


def _positive_step(call: formats.ToolCall) -> dict:
    text = completion(call.to_json())
    span = call_spans(text)[0]
    return {"id": "p/s0/c0", "prompt_id": "p", "sample": 0, "prompt": [], "prefix": text[:span.start],
            "call": span.text}


@pytest.mark.parametrize("kind", ["wrong_tool", "wrong_value", "missing_argument", "invented_argument",
                                  "wrong_type", "extra_call"])
def test_every_negative_kind_is_labelled_zero_by_the_rules(kind):
    stats: Counter = Counter()
    for seed in range(5):
        negs = hard_negatives(_positive_step(C), TOOLS, [C], [kind], 1, random.Random(seed), stats)
        assert len(negs) == 1, stats
        neg = negs[0]
        assert neg["label"] == 0 and neg["kind"] == kind and neg["source"] == "negative"
        # the negative's context + call relabelled from scratch is still a bad call
        spans = call_spans(neg["prefix"] + neg["call"])
        assert rule_labels(spans, [C], TOOLS)[-1].label == 0
        assert spans[-1].text == neg["call"]
    if kind == "extra_call":
        assert neg["prefix"].endswith(C.to_json() + "\n")


def test_inapplicable_kinds_are_counted():
    stats: Counter = Counter()
    no_args = formats.ToolCall("ping", {})
    tools = [{"name": "ping", "parameters": {"type": "object", "properties": {}}}]
    negs = hard_negatives(_positive_step(no_args), tools, [no_args], ["wrong_value", "missing_argument"], 1,
                          random.Random(0), stats)
    assert negs == [] and stats == {"negative_skipped/wrong_value": 1, "negative_skipped/missing_argument": 1}


def test_balance_subsamples_the_majority():
    recs = [{"label": 1}] * 30 + [{"label": 0}] * 10
    kept, dropped = balance(recs, 0.5, None, random.Random(0))
    assert Counter(r["label"] for r in kept) == {1: 10, 0: 10}
    assert dropped == {"dropped_positives": 20, "dropped_negatives": 0}
    kept, _ = balance(recs, 0.25, 8, random.Random(0))
    assert Counter(r["label"] for r in kept) == {1: 2, 0: 6}
    kept, _ = balance([{"label": 0}] * 3, 0.5, None, random.Random(0))
    assert len(kept) == 3  # one class only: nothing to balance against


def test_reference_only_prompts_add_positives_and_negatives_without_samples(tmp_path):
    """Prompts beyond the sampled ones contribute their reference calls and hard negatives (no policy
    samples needed), stay whole on one side of the split, and `reference_prompts` caps them."""
    from training_fixtures import write_curated

    from toolrl.config import validate
    from toolrl.trm.data import build, load_prompts

    data = write_curated(tmp_path / "curated", train=12)

    def params(**trm_data):
        return validate({"data": {"output_dir": str(data)},
                         "trm": {"data": {"prompts": 4, "val_fraction": 0.25, **trm_data}}})

    sampled, extra = load_prompts(params())
    assert len(sampled) == 4 and len(extra) == 8
    assert not {r["id"] for r in sampled} & {r["id"] for r in extra}
    assert [r["id"] for r in load_prompts(params(reference_prompts=3))[1]] == [r["id"] for r in extra[:3]]
    assert load_prompts(params(reference_positives=False))[1] == []
    assert [r["id"] for r in load_prompts(params(reference_prompts=0))[0]] == [r["id"] for r in sampled]

    no_calls = [[""] for _ in sampled]  # the policy wrote nothing: every positive is a reference call
    alone, _, stats_alone = build(params(reference_prompts=0), sampled, no_calls, say=lambda _: None)
    more, _, stats = build(params(), sampled, no_calls, say=lambda _: None, reference_only=extra)
    assert stats["reference_only_prompts"] == 8 and stats_alone["reference_only_prompts"] == 0
    records = more["train"] + more["val"]
    assert sum(r["label"] for r in records) > sum(r["label"] for r in alone["train"] + alone["val"])
    assert {r["source"] for r in records} >= {"reference", "negative"}
    assert not {r["prompt_id"] for r in more["train"]} & {r["prompt_id"] for r in more["val"]}
