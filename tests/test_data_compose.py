"""Composed multi-call examples (data.compose_multi_call): what a composed example holds, how pairs
are chosen (seeded, train split only, conflicting tool schemas skipped), that composed examples go
through the same validation and prompt cap as upstream ones, and that the curate stage's outputs
and accounting stay whole (and unchanged with the option off)."""

from __future__ import annotations

import hashlib
import json

import pytest
from data_fixtures import write_jsonl, xlam_record

from toolrl.config import DataParams, Params, SourceParams
from toolrl.data import compose, validate
from toolrl.data import curate as curate_mod
from toolrl.data.curate import curate
from toolrl.data.schema import Call, CanonicalExample, Message, Target, Tool

SPLIT_FILES = ("train.jsonl", "val.jsonl", "test.jsonl")
WORDS = ("amber", "basin", "cedar", "delta", "ember", "fjord", "grove", "harbor", "island", "jungle",
         "kettle", "lagoon", "meadow", "nectar", "orchid", "prairie", "quartz", "ravine", "summit", "tundra",
         "upland", "valley", "willow", "yonder", "zephyr", "anchor", "beacon", "canyon", "dune", "estuary")


def tool(name: str, *params: str, description: str = "") -> Tool:
    return Tool(name=name, description=description or f"The {name} tool.",
                parameters={"type": "object", "properties": {p: {"type": "string"} for p in params},
                            "required": list(params[:1])})


def example(i: int, call: Call, tools: list[Tool], text: str | None = None, source: str = "s") -> CanonicalExample:
    return CanonicalExample(id=f"{source}:{i}", source=source, tools=tools,
                            conversation=[Message(role="user", content=text or f"request number {i}")],
                            target=Target(calls=[call]))


def distinct(n: int) -> list[CanonicalExample]:
    """n single-call examples, each with its own tool (only parallel_multiple pairs among them)."""
    return [example(i, Call(name=f"tool_{i}", arguments={"q": str(i)}), [tool(f"tool_{i}", "q")]) for i in range(n)]


def data(n: int, share: float = 0.0, seed: int = 0, max_calls: int = 2) -> DataParams:
    return DataParams(compose_multi_call=n, compose_parallel_share=share, seed=seed, compose_max_calls=max_calls)


# ---------------------------------------------------------------- the composer on its own


def test_a_composed_example_carries_both_calls_and_the_union_of_tools():
    shared = tool("lookup", "key")
    a = example(1, Call(name="weather", arguments={"city": "Oslo"}), [tool("weather", "city"), shared],
                "Weather in Oslo?")
    b = example(2, Call(name="stock", arguments={"symbol": "IBM"}), [shared, tool("stock", "symbol")],
                "Price of IBM?")
    [c] = compose.compose([a, b], data(1))
    first, second = (a, b) if c.id == "composed:s:1+s:2" else (b, a)
    assert c.id == f"composed:{first.id}+{second.id}" and c.source == compose.SOURCE
    assert [t.name for t in c.tools] == [t.name for t in first.tools] + [
        t.name for t in second.tools if t.name not in {x.name for x in first.tools}]
    assert sorted(t.name for t in c.tools) == ["lookup", "stock", "weather"]  # the shared tool once
    assert c.target.calls == [first.target.calls[0], second.target.calls[0]]
    assert c.conversation == [Message(role="user", content=f"{first.conversation[0].content}\n\nAlso: "
                                                           f"{second.conversation[0].content}")]
    assert c.provenance["composed"] == compose.PARALLEL_MULTIPLE
    assert [p["id"] for p in c.provenance["parts"]] == [first.id, second.id]
    assert validate.check(c) is None


def test_parallel_pairs_call_one_function_twice_with_other_arguments():
    weather = tool("weather", "city")
    same = [example(i, Call(name="weather", arguments={"city": city}), [weather], f"Weather in {city}?")
            for i, city in enumerate(["Oslo", "Rome", "Oslo"])]
    got = compose.compose(same, data(5, share=1.0))
    assert len(got) == 1  # Oslo twice is the same call twice: only one pair holds two different calls
    c = got[0]
    assert c.provenance["composed"] == compose.PARALLEL and [t.name for t in c.tools] == ["weather"]
    assert {call.arguments["city"] for call in c.target.calls} == {"Oslo", "Rome"}


def test_the_share_splits_the_kinds_and_either_kind_fills_the_other():
    weather = tool("weather", "city")
    same = [example(100 + i, Call(name="weather", arguments={"city": f"c{i}"}), [weather]) for i in range(8)]
    pool = distinct(8) + same
    kinds = [c.provenance["composed"] for c in compose.compose(pool, data(4, share=0.5))]
    assert kinds.count(compose.PARALLEL) == 2 and kinds.count(compose.PARALLEL_MULTIPLE) == 2
    only_distinct = compose.compose(distinct(8), data(3, share=1.0))  # no parallel pairs at all
    assert [c.provenance["composed"] for c in only_distinct] == [compose.PARALLEL_MULTIPLE] * 3


def test_pairs_with_conflicting_tool_schemas_are_skipped():
    a = example(1, Call(name="weather", arguments={"city": "Oslo"}), [tool("weather", "city"), tool("lookup", "key")])
    b = example(2, Call(name="stock", arguments={"symbol": "X"}),
                [tool("stock", "symbol"), tool("lookup", "key", description="Another lookup.")])
    assert compose.compose([a, b], data(1)) == []
    # the same function name with another schema is two different tools, not a parallel pair
    c = example(3, Call(name="weather", arguments={"city": "Rome"}), [tool("weather", "city", "unit")])
    assert compose.compose([a, c], data(1, share=1.0)) == []


def test_only_single_call_single_request_examples_are_paired():
    two_calls = example(1, Call(name="tool_1", arguments={"q": "1"}), [tool("tool_1", "q")])
    two_calls = two_calls.model_copy(update={"target": Target(calls=[two_calls.target.calls[0]] * 2)})
    dialogue = example(2, Call(name="tool_2", arguments={"q": "2"}), [tool("tool_2", "q")])
    dialogue = dialogue.model_copy(update={"conversation": [Message(role="user", content="hi"),
                                                            Message(role="assistant", content="hello"),
                                                            Message(role="user", content="now call")]})
    no_call = CanonicalExample(id="s:3", source="s", tools=[tool("tool_3", "q")],
                               conversation=[Message(role="user", content="thanks")], target=Target(response="ok"))
    assert compose.compose([two_calls, dialogue, no_call, *distinct(1)], data(3)) == []


def test_the_seed_decides_the_pairs_and_the_same_seed_gives_the_same_bytes():
    pool = distinct(20)

    def dumped(seed):
        return [c.model_dump_json() for c in compose.compose(pool, data(5, seed=seed))]

    assert dumped(0) == dumped(0) and len(dumped(0)) == 5
    assert [c.id for c in compose.compose(pool[::-1], data(5))] == [json.loads(d)["id"] for d in dumped(0)]
    assert dumped(1) != dumped(0)
    used = [p["id"] for d in dumped(0) for p in json.loads(d)["provenance"]["parts"]]
    assert len(used) == len(set(used))  # an example joins at most one composed example of a kind


def test_the_budget_check_leaves_out_pairs_that_do_not_fit():
    pool = distinct(6)
    big = {"s:0", "s:1", "s:2"}
    got = compose.compose(pool, data(3), fits=lambda parts: not ({e.id for e in parts} & big))
    assert len(got) == 1 and not {p["id"] for p in got[0].provenance["parts"]} & big


def test_up_to_max_calls_parts_in_rotation_each_of_its_kind():
    weather = tool("weather", "city")
    same = [example(100 + i, Call(name="weather", arguments={"city": f"c{i}"}), [weather], f"Weather in c{i}?")
            for i in range(12)]
    multiple = compose.compose(distinct(30), data(6, max_calls=4))
    assert [len(c.target.calls) for c in multiple] == [2, 3, 4, 2, 3, 4]
    for c in multiple:  # a different function each time, every part's tool offered, requests in call order
        names = [call.name for call in c.target.calls]
        assert len(set(names)) == len(names) and [t.name for t in c.tools] == names
        assert c.conversation[0].content == "\n\nAlso: ".join(f"request number {n.split('_')[1]}" for n in names)
        assert c.id == "composed:" + "+".join(p["id"] for p in c.provenance["parts"])
        assert validate.check(c) is None
    parallel = compose.compose(same, data(3, share=1.0, max_calls=4))
    assert [len(c.target.calls) for c in parallel] == [2, 3, 4]  # 9 of the 12 used, each once
    for c in parallel:
        assert {call.name for call in c.target.calls} == {"weather"} and [t.name for t in c.tools] == ["weather"]
        assert len({call.arguments["city"] for call in c.target.calls}) == len(c.target.calls)
    used = [p["id"] for c in parallel for p in c.provenance["parts"]]
    assert len(used) == len(set(used))


def test_a_group_that_runs_out_of_partners_keeps_what_it_found():
    weather = tool("weather", "city")
    same = [example(i, Call(name="weather", arguments={"city": f"c{i}"}), [weather]) for i in range(3)]
    [c] = compose.compose(same, data(5, share=1.0, max_calls=4))  # wants 2 first: gets 2; 1 left over
    assert len(c.target.calls) == 2
    [c] = compose.compose(same, data(1, share=1.0, max_calls=3), fits=lambda parts: len(parts) <= 2)
    assert len(c.target.calls) == 2  # the budget stops at two parts


def test_off_composes_nothing():
    assert compose.compose(distinct(10), data(0)) == []


# ---------------------------------------------------------------- inside the curate stage


def test_composed_examples_are_validated_and_capped_like_upstream_ones():
    tokenizer = curate_mod.load_tokenizer("smollm2-135m-instruct")
    params = DataParams(compose_multi_call=1, max_prompt_tokens=500)

    def composed(pair):
        lengths = {e.id: 0 for e in pair}  # understated, so the pair is tried whatever its length
        return curate_mod.compose_train(params, pair, dict.fromkeys(lengths, "train"), lengths, tokenizer)

    long_tool = tool("manual", "q", description="A very long description of this tool. " * 60)
    a = example(1, Call(name="manual", arguments={"q": "1"}), [long_tool])
    b = example(2, Call(name="tool_2", arguments={"q": "2"}), [tool("tool_2", "q")])
    built, records, kept, [too_long] = composed([a, b])
    assert len(built) == 1 and not records and not kept
    assert too_long.reason == "prompt_too_long" and "> data.max_prompt_tokens=500" in too_long.detail
    assert too_long.id == built[0].id and too_long.source == compose.SOURCE and too_long.record["id"] == too_long.id
    bad = example(3, Call(name="tool_3", arguments={"q": "3", "extra": "x"}), [tool("tool_3", "q")])
    built, records, _, [invalid] = composed([bad, b])
    assert len(built) == 1 and not records
    assert invalid.reason == "unknown_parameter" and "extra" in invalid.detail and invalid.id == built[0].id
    fine = example(4, Call(name="tool_4", arguments={"q": "4"}), [tool("tool_4", "q")])
    built, [record], kept, rejected = composed([fine, b])
    assert not rejected and kept == {record["id"]: kept[record["id"]]} and record["id"] == built[0].id


def test_the_composed_cap_is_its_own_setting_and_must_leave_room_in_sft():
    tokenizer = curate_mod.load_tokenizer("smollm2-135m-instruct")
    a = example(1, Call(name="manual", arguments={"q": "1"}),
                [tool("manual", "q", description="A long description of this tool. " * 30)])
    b = example(2, Call(name="tool_2", arguments={"q": "2"}), [tool("tool_2", "q")])
    pair, lengths = [a, b], {"s:1": 0, "s:2": 0}
    built, _, _, [too_long] = curate_mod.compose_train(DataParams(compose_multi_call=1, compose_max_prompt_tokens=300),
                                                       pair, dict.fromkeys(lengths, "train"), lengths, tokenizer)
    assert "> data.compose_max_prompt_tokens=300" in too_long.detail
    _, [record], _, _ = curate_mod.compose_train(DataParams(compose_multi_call=1, max_prompt_tokens=300,
                                                            compose_max_prompt_tokens=900),
                                                 pair, dict.fromkeys(lengths, "train"), lengths, tokenizer)
    assert record["id"] == built[0].id
    with pytest.raises(ValueError, match="compose_max_prompt_tokens .1024. must be below sft.max_length"):
        Params(data=DataParams(compose_max_prompt_tokens=1024))


def test_the_budget_estimate_is_the_composed_length_for_different_tools():
    tokenizer = curate_mod.load_tokenizer("smollm2-135m-instruct")
    a = example(1, Call(name="weather", arguments={"city": "Oslo"}), [tool("weather", "city")], "Weather in Oslo?")
    b = example(2, Call(name="stock", arguments={"symbol": "IBM"}), [tool("stock", "symbol", "market")],
                "What does IBM trade at on the New York exchange today?")
    [c] = compose.compose([a, b], data(1))
    la, lb, lc = curate_mod.prompt_lengths([curate_mod.render_views(e) for e in (a, b, c)], tokenizer)
    assert la + lb - curate_mod.shared_prompt_tokens(tokenizer) == lc


def mix(folder, out: str, **extra) -> Params:
    """32 single-call xLAM records: 24 with their own tool (and a shared `lookup`), 8 on one function."""
    lookup = {"name": "lookup", "description": "Look a key up.", "parameters": {"key": {"type": "str"}}}
    records = []
    for i in range(24):
        words = " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(5))
        own = {"name": f"tool_{i}", "description": f"Tool {i}.", "parameters": {"q": {"type": "str"}}}
        records.append(xlam_record(i, f"Please run {words} for me", [{"name": f"tool_{i}", "arguments": {"q": words}}],
                                   tools=[own, lookup]))
    stock = {"name": "get_stock_price", "description": "Latest price.", "parameters": {"symbol": {"type": "str"}}}
    for i, sym in enumerate(["TSLA", "IBM", "AAPL", "MSFT", "NVDA", "AMZN", "ORCL", "INTC"]):
        words = " ".join(WORDS[(i * 11 + k) % len(WORDS)] for k in range(4))
        records.append(xlam_record(100 + i, f"Quote {sym}, {words}?",
                                   [{"name": "get_stock_price", "arguments": {"symbol": sym}}], tools=[stock]))
    path = write_jsonl(folder / "xlam.jsonl", records)
    return Params(data=DataParams(sources=[SourceParams(name="xlam", location=str(path))], max_no_call_share=None,
                                  output_dir=str(folder / out), **extra))


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compose")
    return curate(mix(folder, "off"), track=False), curate(mix(folder, "on", compose_multi_call=40), track=False)


def test_composed_examples_join_train_only_from_train_parts(runs):
    off, on = runs
    train = read_jsonl(on.output_dir / "train.jsonl")
    composed = [r for r in train if r["source"] == compose.SOURCE]
    upstream_train = {r["id"] for r in train if r["source"] != compose.SOURCE}
    held_out = {r["id"] for f in ("val.jsonl", "test.jsonl") for r in read_jsonl(on.output_dir / f)}
    assert held_out and not any(r["source"] == compose.SOURCE for f in ("val.jsonl", "test.jsonl")
                                for r in read_jsonl(on.output_dir / f))
    parts = [p["id"] for r in composed for p in r["provenance"]["parts"]]
    assert parts and set(parts) <= upstream_train and not set(parts) & held_out
    c = on.stats["composed"]
    assert c["asked"] == 40 and c["built"] == len(composed) == c["kept"] and c["quarantined"] == 0
    assert c["parallel"] + c["parallel_multiple"] == c["built"] and c["parallel"] and c["parallel_multiple"]
    assert c["calls_2"] == c["built"] and not any(k.startswith("calls_") and k != "calls_2" for k in c)
    for r in composed:  # the same views as every record, and a valid target with both calls
        assert len(r["target"]["calls"]) == 2 and r["prompt"][1]["content"].count("Also: ") == 1
        fields = ("id", "source", "tools", "conversation", "target", "provenance")
        assert validate.check(CanonicalExample.model_validate({k: r[k] for k in fields})) is None
        assert r["completion"][0]["content"] == r["ground_truth"]


def test_accounting_holds_with_composed_examples(runs):
    _, on = runs
    t = on.totals
    assert t["read"] + t["generated"] == t["kept"] + t["quarantined"] + t["duplicates"]
    assert t["generated"] == on.stats["composed"]["built"]
    row = on.stats["per_source"][compose.SOURCE]
    assert row["read"] == 0 and row["generated"] == row["kept"] + row["quarantined"] and row["duplicates"] == 0
    assert row["splits"] == {"train": row["kept"], "val": 0, "test": 0}
    assert on.stats["per_calls"]["2"]["train"] == row["kept"]
    kept = sum(len(read_jsonl(on.output_dir / f)) for f in SPLIT_FILES)
    assert kept == t["kept"] and len(read_jsonl(on.output_dir / "quarantine.jsonl")) == t["quarantined"]
    card = (on.output_dir / "card.md").read_text()
    assert (f"Composed multi-call examples (`data.compose_multi_call` = 40): {row['generated']} built" in card
            and "| composed | 0 |" in card)


def test_off_leaves_every_output_as_it_was(runs):
    off, on = runs
    assert "composed" not in off.stats and compose.SOURCE not in off.stats["per_source"]
    assert "omposed" not in (off.output_dir / "card.md").read_text()
    for name in ("val.jsonl", "test.jsonl", "duplicates.jsonl"):  # composing moves no upstream example
        assert (off.output_dir / name).read_bytes() == (on.output_dir / name).read_bytes()
    on_train = [line for line in (on.output_dir / "train.jsonl").read_text().splitlines()
                if json.loads(line)["source"] != compose.SOURCE]
    assert on_train == (off.output_dir / "train.jsonl").read_text().splitlines()
    share_only = curate(mix(off.output_dir.parent, "share", compose_parallel_share=1.0), track=False)

    def digests(out):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}

    assert digests(share_only.output_dir) == digests(off.output_dir)


def test_the_label_composed_is_reserved_while_composing():
    with pytest.raises(ValueError, match="label 'composed'"):
        DataParams(sources=[SourceParams(name="bfcl", label="composed")], compose_multi_call=1)
    DataParams(sources=[SourceParams(name="bfcl", label="composed")])  # off: any label


def test_bfcl_live_curation_with_composed_examples(tmp_path):
    params = Params(data=DataParams(sources=[SourceParams(name="bfcl", categories=["live_simple"])],
                                    compose_multi_call=20, compose_max_calls=4, compose_max_prompt_tokens=900,
                                    output_dir=str(tmp_path / "out")))
    result = curate(params, track=False)
    c = result.stats["composed"]
    assert c["built"] == 20 and c["parallel"] and c["parallel_multiple"] and c["kept"] + c["quarantined"] == 20
    assert sum(c[f"calls_{n}"] for n in (2, 3, 4)) == 20 and c["calls_3"] and c["calls_4"]
    assert f"{c['calls_4']} of 4 calls" in (result.output_dir / "card.md").read_text()
    tokens = result.stats["prompt_tokens"]
    assert tokens["cap"] == 768 and 768 < tokens["max"] <= 900  # the composed examples' own, larger cap
    t = result.totals
    assert t["read"] + t["generated"] == t["kept"] + t["quarantined"] + t["duplicates"]
    train = {r["id"]: r for r in read_jsonl(result.output_dir / "train.jsonl")}
    composed = [r for r in train.values() if r["source"] == compose.SOURCE]
    assert len(composed) == c["kept"]
    for r in composed:  # the parts are kept training examples, their calls in order
        parts = [train[p["id"]] for p in r["provenance"]["parts"]]
        assert r["target"]["calls"] == [p["target"]["calls"][0] for p in parts]
