"""Each source module on small files in its upstream format (written here), and BFCL from the
installed bfcl_eval package."""

from __future__ import annotations

import json

import pytest
from data_fixtures import (
    HAMMER_RECORDS,
    RLLA_RECORDS,
    TOOLACE_RECORDS,
    XLAM_RECORDS,
    write_json,
    write_jsonl,
    write_parquet,
)

from toolrl import formats
from toolrl.config import ConfigError, DataParams, SourceParams
from toolrl.data import bfcl, rlla, toolace, xlam
from toolrl.data.readers import RawRecord, read_records
from toolrl.data.schema import CanonicalExample, DataError, Rejected, render_views

DATA = DataParams()


def convert_all(module, src):
    return [module.convert(raw, src, DATA) for raw in module.records(src)]


# ---------------------------------------------------------------- rlla


@pytest.fixture
def rlla_src(tmp_path):
    return SourceParams(name="rlla", location=str(write_json(tmp_path / "rlla.json", RLLA_RECORDS)))


def test_rlla_parses_tools_dialogue_and_target(rlla_src):
    outs = convert_all(rlla, rlla_src)
    first = outs[0][0]
    assert isinstance(first, CanonicalExample)
    assert [t.name for t in first.tools] == ["Get Weather", "Search Flights"]
    weather = first.tools[0].parameters
    # a tool marking some parameters optional has the others required
    assert weather["required"] == ["city"] and weather["properties"]["unit"]["type"] == "string"
    # no optional marker anywhere: ToolRL's listing says nothing about required parameters
    assert first.tools[1].parameters["required"] == []
    assert first.tools[1].parameters["properties"]["max_stops"]["type"] == "integer"
    # "<tool_call>" mentioned inside the thought is not taken for the call block
    assert first.target.thought.startswith("The user wants the weather")
    assert [(c.name, c.arguments) for c in first.target.calls] == [("Get Weather", {"city": "Paris"})]
    assert first.provenance["index"] == 0 and first.id == "rlla:0"


def test_rlla_multi_turn_history(rlla_src):
    ex = convert_all(rlla, rlla_src)[1][0]
    assert [m.role for m in ex.conversation] == ["user", "assistant", "tool", "assistant", "user"]
    assert "Search Flights" in ex.conversation[1].content and "<tool_call>" in ex.conversation[1].content
    assert ex.conversation[2].content.startswith('[{"name": "Search Flights"')
    assert ex.target.calls[0].arguments == {"city": "New York", "unit": "fahrenheit"}


def test_rlla_bad_target_and_no_call(rlla_src):
    outs = convert_all(rlla, rlla_src)
    bad = outs[2][0]
    assert isinstance(bad, Rejected) and bad.reason == "unparseable_target"
    assert bad.provenance["index"] == 2 and bad.record == RLLA_RECORDS[2]
    answer = outs[4][0]
    assert answer.target.calls == [] and answer.target.response == "You're welcome!"


def test_rlla_reads_back_what_the_renderer_writes(rlla_src, tmp_path):
    """A curated record rendered as ToolRL's {instruction, input, output} parses to the same example."""
    original = convert_all(rlla, rlla_src)[1][0]
    original.tools[1].parameters["required"] = ["origin", "destination"]
    view = render_views(original)
    as_rlla = {"instruction": view["prompt"][0]["content"], "input": view["prompt"][1]["content"],
               "output": view["completion"][0]["content"]}
    src = SourceParams(name="rlla", location=str(write_json(tmp_path / "again.json", [as_rlla])))
    again = convert_all(rlla, src)[0][0]
    assert again.tools == original.tools
    assert again.conversation == original.conversation
    assert again.target == original.target


# ---------------------------------------------------------------- toolace


@pytest.fixture
def toolace_file(tmp_path):
    return write_json(tmp_path / "toolace.json", TOOLACE_RECORDS)


def test_toolace_one_example_per_assistant_turn(toolace_file):
    src = SourceParams(name="toolace", location=str(toolace_file))
    outs = convert_all(toolace, src)
    first = outs[0]
    assert [type(o) for o in first] == [CanonicalExample, CanonicalExample, CanonicalExample]
    calls, answer, again = first
    assert [(c.name, c.arguments) for c in calls.target.calls] == [
        ("Get Weather", {"city": "Paris", "days": 3}),
        ("Convert Units", {"value": -2.5, "flags": [True, False]}),
    ]
    assert answer.target.calls == [] and answer.target.response.startswith("It is 21 degrees")
    assert [m.role for m in again.conversation] == ["user", "assistant", "tool", "assistant", "user"]
    # earlier calls appear in the output format, which formats.parse reads back
    past = formats.parse(again.conversation[1].content)
    assert past.ok and [c.name for c in past.calls] == ["Get Weather", "Convert Units"]
    assert calls.tools[1].parameters["properties"]["value"]["type"] == "number"
    assert [e.id for e in first] == ["toolace:0:t1", "toolace:0:t3", "toolace:0:t5"]


def test_toolace_turns_last_and_bad_records(toolace_file):
    src = SourceParams(name="toolace", location=str(toolace_file), turns="last")
    outs = convert_all(toolace, src)
    assert len(outs[0]) == 1 and outs[0][0].target.calls[0].arguments == {"city": "Berlin"}
    assert outs[1][0].reason == "unparseable_target" and "keyword" in outs[1][0].detail
    assert outs[2][0].reason == "invalid_tools"


def test_toolace_call_syntax():
    assert toolace.looks_like_calls("[Get Weather(city='Oslo')]")
    assert not toolace.looks_like_calls("[Note] it is sunny")
    calls = toolace.parse_calls('[a.b(x={"k": [1, null]}, y="p(q), r"), c()]')
    assert [(c.name, c.arguments) for c in calls] == [("a.b", {"x": {"k": [1, None]}, "y": "p(q), r"}), ("c", {})]
    with pytest.raises(ValueError):
        toolace.parse_calls("[f(x=len('a'))]")


# ---------------------------------------------------------------- xlam and hammer


def test_xlam_jsonl_and_parquet_agree(tmp_path):
    jl = SourceParams(name="xlam", location=str(write_jsonl(tmp_path / "x.jsonl", XLAM_RECORDS)))
    pq = SourceParams(name="xlam", location=str(write_parquet(tmp_path / "x.parquet", XLAM_RECORDS)))
    a, b = convert_all(xlam, jl), convert_all(xlam, pq)

    def targets(outs):
        return [o[0].target for o in outs if isinstance(o[0], CanonicalExample)]

    assert targets(a) == targets(b)
    first = a[0][0]
    assert first.id == "xlam:0" and first.conversation[0].content == "Price of TSLA?"
    price = first.tools[0].parameters
    assert price["required"] == ["symbol"]  # `str, optional` is not required
    assert first.tools[1].parameters["properties"]["numbers"] == {"type": "array", "description": "Integers",
                                                                  "items": {"type": "integer"}}
    assert a[8][0].reason == "unparseable_target"


def test_unparseable_line_keeps_its_line_number(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", XLAM_RECORDS[:2], extra_lines=("{oops",))
    raws = read_records(str(path))
    assert raws[2].error and raws[2].provenance["line"] == 3
    out = xlam.convert(raws[2], SourceParams(name="xlam", location=str(path)), DATA)[0]
    assert out.reason == "unparseable_record" and out.provenance["line"] == 3


def test_hammer_irrelevance_is_a_direct_answer(tmp_path):
    src = SourceParams(name="hammer", location=str(write_jsonl(tmp_path / "h.jsonl", HAMMER_RECORDS)))
    from toolrl.data import hammer

    no_call, call = (o[0] for o in convert_all(hammer, src))
    assert no_call.target.calls == [] and no_call.target.response in DATA.no_call_responses
    assert call.target.calls[0].arguments == {"numbers": [10, 32]}


def test_missing_location_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither an existing file"):
        read_records(str(tmp_path / "nope.json"))
    (tmp_path / "bad.json").write_text("{not json at all")
    with pytest.raises(DataError, match="not JSON"):
        read_records(str(tmp_path / "bad.json"))
    with pytest.raises(ValueError, match="needs a location"):
        SourceParams(name="xlam")


# ---------------------------------------------------------------- bfcl


@pytest.fixture(scope="module")
def bfcl_simple():
    src = SourceParams(name="bfcl", categories=["live_simple"])
    raws = bfcl.records(src)
    return {r.record["id"]: (r, bfcl.convert(r, src, DATA)[0]) for r in raws}


def test_bfcl_first_acceptable_value_is_the_target(bfcl_simple):
    raw, ex = bfcl_simple["live_simple_0-0-0"]
    assert [(c.name, c.arguments) for c in ex.target.calls] == [("get_user_info", {"user_id": 7890, "special": "black"})]
    assert ex.tools[0].parameters["properties"]["user_id"]["type"] == "integer"
    assert ex.provenance["category"] == "live_simple" and ex.provenance["line"] == 1
    # "" among the acceptable values: optional, left out
    _, weather = bfcl_simple["live_simple_4-3-0"]
    assert weather.target.calls[0].arguments == {"location": "Tel Aviv, Israel"}


def test_bfcl_system_message_is_folded_into_the_user_turn(bfcl_simple):
    with_system = [(raw, ex) for raw, ex in bfcl_simple.values()
                   if any(m["role"] == "system" for turn in raw.record["question"] for m in turn)]
    assert with_system
    raw, ex = with_system[0]
    system = next(m["content"] for m in raw.record["question"][0] if m["role"] == "system")
    assert ex.conversation[0].role == "user" and ex.conversation[0].content.startswith(system.strip())


def test_bfcl_irrelevance_becomes_a_no_call_example():
    src = SourceParams(name="bfcl", categories=["live_irrelevance"])
    raw = bfcl.records(src)[0]
    ex = bfcl.convert(raw, src, DATA)[0]
    assert ex.target.calls == [] and ex.target.response in DATA.no_call_responses


def test_no_call_answers_are_spread_over_the_phrasings_and_stable():
    src = SourceParams(name="bfcl", categories=["live_irrelevance"])
    answers = [bfcl.convert(raw, src, DATA)[0].target.response for raw in bfcl.records(src)[:200]]
    counts = {a: answers.count(a) for a in DATA.no_call_responses}
    assert set(answers) == set(DATA.no_call_responses) and min(counts.values()) >= 20
    again = [bfcl.convert(raw, src, DATA)[0].target.response for raw in bfcl.records(src)[:200]]
    assert again == answers
    one = DataParams(no_call_responses=["Nothing here fits."])
    assert bfcl.convert(bfcl.records(src)[0], src, one)[0].target.response == "Nothing here fits."
    with pytest.raises(ValueError, match="empty answer"):
        DataParams(no_call_responses=["ok", "  "])


def test_bfcl_resolution_rules():
    # required by the schema although "" is acceptable: the first other value is kept
    assert bfcl.resolve_arguments({"port": [5432, ""], "db": ["x", ""]}, ["port"]) == {"port": 5432}
    # nested dicts (also inside lists) are possible answers too; inside them plain values stay
    nested = {"box": [[{"x": [1.5], "y": [2]}]], "pos": [{"lat": 10.5, "lon": [3, 4]}]}
    assert bfcl.resolve_arguments(nested) == {"box": [{"x": 1.5, "y": 2}], "pos": {"lat": 10.5, "lon": 3}}
    with pytest.raises(ValueError, match="empty list"):
        bfcl.resolve_arguments({"a": []})


def test_bfcl_gorilla_types_become_json_schema():
    from toolrl.data.tool_schema import normalize_tool

    tool = normalize_tool({"name": "f", "description": "d", "parameters": {"type": "dict", "required": ["a"], "properties": {
        "a": {"type": "float"}, "b": {"type": "tuple", "items": {"type": "integer"}}, "c": {"type": "any"},
        "d": {"type": "dict", "properties": {"e": {"type": "boolean"}}}}}})
    props = tool.parameters["properties"]
    assert tool.parameters["type"] == "object"
    assert props["a"] == {"type": "number"} and props["b"] == {"type": "array", "items": {"type": "integer"}}
    assert props["c"] == {} and props["d"] == {"type": "object", "properties": {"e": {"type": "boolean"}}}


@pytest.mark.parametrize("category, message", [
    ("simple_python", "held out for the evaluate stage"),
    ("irrelevance", "held out for the evaluate stage"),
    ("live_relevance", "no possible answers"),
    ("multi_turn_base", "bfcl_multi_turn source reads it"),
    ("nonsense", "not a BFCL category"),
])
def test_bfcl_refuses_held_out_and_unusable_categories(category, message):
    with pytest.raises(ConfigError, match=message):
        bfcl.records(SourceParams(name="bfcl", categories=[category]))


def test_bfcl_default_categories_are_the_live_ones():
    cats = bfcl.check_categories([])
    assert cats and all(c.startswith("live_") for c in cats) and "live_relevance" not in cats


def test_raw_record_json_strings_or_values(tmp_path):
    """xLAM fields may be JSON strings (the hub files) or decoded values (some mirrors)."""
    rec = dict(XLAM_RECORDS[1], tools=json.loads(XLAM_RECORDS[1]["tools"]),
               answers=json.loads(XLAM_RECORDS[1]["answers"]))
    src = SourceParams(name="xlam", location="unused/by-convert")
    ex = xlam.convert(RawRecord(index=0, record=rec), src, DATA)[0]
    assert [c.name for c in ex.target.calls] == ["sum_list", "get_stock_price"]


def test_two_entries_of_one_loader_need_labels(tmp_path):
    with pytest.raises(ValueError, match="own `label`"):
        DataParams(sources=[SourceParams(name="xlam", location="a.jsonl"), SourceParams(name="xlam", location="b.jsonl")])
    ok = DataParams(sources=[SourceParams(name="xlam", location="a.jsonl"),
                             SourceParams(name="xlam", location="b.jsonl", label="xlam_b")])
    assert [s.tag for s in ok.sources] == ["xlam", "xlam_b"]
    with pytest.raises(ValueError, match="bfcl sources only"):
        SourceParams(name="xlam", location="a.jsonl", categories=["live_simple"])
