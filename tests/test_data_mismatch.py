"""Mismatched no-call examples (data.mismatch_no_call): a train request offered its own example's other
tools, without the one it calls (nor one too like it), answered directly. What one holds, which tools
are kept, that the choice is seeded, and that the curate stage keeps its accounting, splits and card
whole."""

from __future__ import annotations

import json

import pytest
from data_fixtures import write_jsonl, xlam_record

from toolrl.config import DataParams, Params, SourceParams
from toolrl.data import mismatch, validate
from toolrl.data.curate import curate
from toolrl.data.schema import Call, CanonicalExample, Message, Target, Tool


def tool(name: str, description: str) -> Tool:
    return Tool(name=name, description=description,
                parameters={"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]})


def example(i: int, text: str, tools: list[Tool], calls: int = 1) -> CanonicalExample:
    return CanonicalExample(id=f"s:{i}", source="s", tools=tools,
                            conversation=[Message(role="user", content=text)],
                            target=Target(calls=[Call(name=tools[0].name, arguments={"x": str(k)}) for k in range(calls)]))


AREA = tool("calculate_circle_area", "Calculate the area of a circle from its radius.")
PERIMETER = tool("calculate_rectangle_perimeter", "Calculate the perimeter of a rectangle.")
CIRCLE_AREA_TOO = tool("circle_area", "Calculate the area of a circle.")
WEATHER = tool("get_weather", "Current weather of a city.")


def test_words_split_identifiers_and_drop_stop_words():
    assert mismatch.words("calculateCircleArea of the get_weather") == {"calculate", "circle", "area", "weather"}
    assert mismatch.jaccard(mismatch.tool_words(AREA), mismatch.tool_words(CIRCLE_AREA_TOO)) >= mismatch.SAME_TOOL
    assert mismatch.jaccard(mismatch.tool_words(AREA), mismatch.tool_words(PERIMETER)) < mismatch.SAME_TOOL


def test_the_request_keeps_its_other_tools_and_loses_the_called_one():
    request = example(1, "Calculate the area of a circle with radius 3.", [AREA, PERIMETER, WEATHER])
    [ex] = mismatch.mismatch([request], DataParams(mismatch_no_call=3))
    assert ex.source == mismatch.SOURCE and ex.tools == [PERIMETER, WEATHER] and not ex.target.calls
    assert ex.target.response in DataParams().no_call_responses
    assert ex.conversation == request.conversation and ex.id == "mismatched:s:1"
    assert ex.provenance["mismatched"] == {"request": "s:1", "request_source": "s",
                                           "removed": AREA.name, "left_out": 0}
    assert validate.check(ex) is None


def test_a_tool_too_like_the_called_one_is_left_out_too():
    request = example(1, "Calculate the area of a circle with radius 3.", [AREA, CIRCLE_AREA_TOO, PERIMETER])
    [ex] = mismatch.mismatch([request], DataParams(mismatch_no_call=1))
    assert ex.tools == [PERIMETER] and ex.provenance["mismatched"]["left_out"] == 1
    only_alike = example(2, "Calculate the area of a circle with radius 3.", [AREA, CIRCLE_AREA_TOO])
    assert mismatch.mismatch([only_alike], DataParams(mismatch_no_call=1)) == []


def test_only_single_call_single_request_examples_with_other_tools_become_requests():
    multi = example(1, "Calculate the area of two circles.", [AREA, PERIMETER], calls=2)
    alone = example(2, "Calculate the area of a circle.", [AREA])
    ok = example(3, "Calculate the perimeter of a rectangle.", [PERIMETER, AREA])
    built = mismatch.mismatch([multi, alone, ok], DataParams(mismatch_no_call=5))
    assert [e.provenance["mismatched"]["request"] for e in built] == ["s:3"]


def test_the_seed_decides_which_requests_and_off_builds_nothing():
    train = [example(i, f"Request {i}.", [tool(f"tool_{i}", f"Tool number {i}."), WEATHER]) for i in range(12)]
    picks = {seed: [e.id for e in mismatch.mismatch(train, DataParams(mismatch_no_call=4, seed=seed))]
             for seed in (0, 1)}
    assert len(picks[0]) == 4 and picks[0] != picks[1]
    assert picks[0] == [e.id for e in mismatch.mismatch(train, DataParams(mismatch_no_call=4, seed=0))]
    assert mismatch.mismatch(train, DataParams()) == []


def test_the_label_mismatched_is_reserved_while_mismatching():
    with pytest.raises(ValueError, match="label 'mismatched'"):
        DataParams(sources=[SourceParams(name="bfcl", label="mismatched")], mismatch_no_call=1)
    DataParams(sources=[SourceParams(name="bfcl", label="mismatched")])  # off: any label


# ---------------------------------------------------------------- through the curate stage


TOPICS = [("convert_currency", "Convert an amount between two currencies.", "Convert 10 {} to euros"),
          ("get_exchange_history", "Historical exchange rates of a currency.", "Exchange rate history of {}"),
          ("book_flight", "Book a flight to a city.", "Book a flight to {}"),
          ("find_hotel", "Find a hotel in a city.", "Find a hotel in {}")]
PLACES = ["Oslo", "Rome", "Lima", "Kyiv", "Pune", "Doha", "Nice", "Bern", "Riga", "Cork"]


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mismatch")
    records = []
    specs = [{"name": name, "description": desc, "parameters": {"x": {"type": "str"}}} for name, desc, _ in TOPICS]
    for t, (name, _, text) in enumerate(TOPICS):
        pair = specs[t - t % 2: t - t % 2 + 2]  # each request offers its topic's two tools
        for i, place in enumerate(PLACES):
            records.append(xlam_record(t * 100 + i, text.format(place), [{"name": name, "arguments": {"x": place}}],
                                       tools=pair))
    path = write_jsonl(folder / "xlam.jsonl", records)

    def params(out: str, **extra) -> Params:
        return Params(data=DataParams(sources=[SourceParams(name="xlam", location=str(path))],
                                      max_no_call_share=None, output_dir=str(folder / out), **extra))

    return curate(params("off"), track=False), curate(params("on", mismatch_no_call=12), track=False)


def test_mismatched_examples_join_train_only_from_train_requests(runs):
    off, on = runs
    train = read_jsonl(on.output_dir / "train.jsonl")
    mism = [r for r in train if r["source"] == mismatch.SOURCE]
    own = {r["id"]: r for r in train if r["source"] != mismatch.SOURCE}
    assert len(mism) == 12 and not any(r["source"] == mismatch.SOURCE for f in ("val.jsonl", "test.jsonl")
                                       for r in read_jsonl(on.output_dir / f))
    for r in mism:  # the request, its topic's other tool, a direct answer, the same views as every record
        where = r["provenance"]["mismatched"]
        request = own[where["request"]]
        assert r["conversation"] == request["conversation"] and not r["target"]["calls"]
        assert r["tools"] == [t for t in request["tools"] if t["name"] != request["target"]["calls"][0]["name"]]
        assert len(r["tools"]) == 1 and r["completion"][0]["content"] == r["ground_truth"]


def test_accounting_and_card_with_mismatched_examples(runs):
    off, on = runs
    t = on.totals
    assert t["read"] + t["generated"] == t["kept"] + t["quarantined"] + t["duplicates"]
    row = on.stats["per_source"][mismatch.SOURCE]
    assert row["read"] == 0 and row["generated"] == row["kept"] == 12
    assert row["splits"] == {"train": 12, "val": 0, "test": 0} and on.stats["per_calls"]["0"]["train"] == 12
    m = on.stats["mismatched"]
    assert m == {"asked": 12, "built": 12, "kept": 12, "quarantined": 0, "left_out_alike": 0}
    assert "Mismatched no-call examples (`data.mismatch_no_call` = 12): 12 built" in (on.output_dir / "card.md").read_text()
    assert "mismatched" not in off.stats and "ismatched" not in (off.output_dir / "card.md").read_text()
    on_train = [line for line in (on.output_dir / "train.jsonl").read_text().splitlines()
                if json.loads(line)["source"] != mismatch.SOURCE]
    assert on_train == (off.output_dir / "train.jsonl").read_text().splitlines()
    for name in ("val.jsonl", "test.jsonl"):  # mismatching moves no upstream example
        assert (off.output_dir / name).read_bytes() == (on.output_dir / name).read_bytes()
