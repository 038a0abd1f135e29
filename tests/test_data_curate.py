"""The curate stage end to end on a mix of small upstream files: accounting, quarantine, dedup,
masking, split, outputs, reproducibility, MLflow, CLI."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import time

import pytest
import yaml
from data_fixtures import XLAM_TOOLS, write_all, write_jsonl, xlam_record

from toolrl import formats
from toolrl.config import DataParams, Params, SourceParams, TrackingParams
from toolrl.data import curate as curate_mod
from toolrl.data import dedup, masking, split, toolace, validate
from toolrl.data.curate import curate
from toolrl.data.schema import Call, CanonicalExample, Message, Target, Tool

SPLIT_FILES = ("train.jsonl", "val.jsonl", "test.jsonl")


def mix_sources(folder) -> list[dict]:
    files = write_all(folder)
    long_tool = dict(XLAM_TOOLS[0], description="A very long description. " * 400)
    long_file = write_jsonl(folder / "long.jsonl", [
        xlam_record(0, "Price of AMZN?", [{"name": "get_stock_price", "arguments": {"symbol": "AMZN"}}],
                    tools=[long_tool])])
    return [
        {"name": "rlla", "location": str(files["rlla"])},
        {"name": "toolace", "location": str(files["toolace"])},
        {"name": "xlam", "location": str(files["xlam"])},
        {"name": "hammer", "location": str(files["hammer"])},
        {"name": "xlam", "label": "xlam_long", "location": str(long_file)},
    ]


def mix_params(folder, out_dir, **data) -> Params:
    data.setdefault("max_no_call_share", None)  # the mix is small: capping would hide other reasons
    return Params(data=DataParams(sources=[SourceParams(**s) for s in mix_sources(folder)],
                                  output_dir=str(out_dir), **data))


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    result = curate(mix_params(root / "in", root / "out"), track=False)
    return result


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_record_is_accounted_for(curated):
    t = curated.totals
    assert t == {"read": 21, "generated": 2, "kept": 11, "quarantined": 10, "duplicates": 2}
    assert t["read"] + t["generated"] == t["kept"] + t["quarantined"] + t["duplicates"]
    out = curated.output_dir
    kept = sum(len(read_jsonl(out / f)) for f in SPLIT_FILES)
    assert kept == t["kept"]
    assert len(read_jsonl(out / "quarantine.jsonl")) == t["quarantined"]
    assert len(read_jsonl(out / "duplicates.jsonl")) == t["duplicates"]
    per_source = curated.stats["per_source"]
    assert per_source["toolace"]["generated"] == 2 and per_source["xlam"]["read"] == 10
    for c in per_source.values():
        assert c["read"] + c["generated"] == c["kept"] + c["quarantined"] + c["duplicates"]


def test_quarantine_reasons_and_source_lines(curated):
    assert curated.stats["quarantine_reasons"] == {
        "invalid_tools": 1, "missing_required_parameter": 1, "prompt_too_long": 1, "type_mismatch": 1,
        "unknown_parameter": 1, "unknown_tool": 1, "unparseable_record": 1, "unparseable_target": 3,
    }
    entries = read_jsonl(curated.output_dir / "quarantine.jsonl")
    for e in entries:
        assert e["reason"] and e["detail"] and "index" in e["provenance"] and e["source"]
    bad_line = next(e for e in entries if e["reason"] == "unparseable_record")
    assert bad_line["provenance"]["line"] == 10 and bad_line["record"] == "{this line is not json"
    too_long = next(e for e in entries if e["reason"] == "prompt_too_long")
    assert too_long["source"] == "xlam_long" and "> data.max_prompt_tokens=768" in too_long["detail"]


def test_duplicates_keep_the_first(curated):
    dups = {d["id"]: d for d in read_jsonl(curated.output_dir / "duplicates.jsonl")}
    assert dups["xlam:2"]["kind"] == "exact" and dups["xlam:2"]["duplicate_of"] == "xlam:0"
    assert dups["xlam:4"]["kind"] == "near" and dups["xlam:4"]["duplicate_of"] == "xlam:3"
    assert 0.9 <= dups["xlam:4"]["similarity"] < 1


def test_records_carry_both_views(curated):
    records = [r for f in SPLIT_FILES for r in read_jsonl(curated.output_dir / f)]
    keys = {"id", "source", "tools", "conversation", "target", "provenance", "prompt", "completion", "ground_truth"}
    for r in records:
        assert set(r) == keys
        assert r["prompt"] == formats.prompt_messages(r["tools"], r["conversation"])
        parsed = formats.parse(r["completion"][0]["content"])
        assert parsed.ok and parsed.thought
        assert [{"name": c.name, "arguments": c.arguments} for c in parsed.calls] == r["target"]["calls"]
        assert parsed.response == r["target"]["response"]
        assert r["ground_truth"] == r["completion"][0]["content"]
        fields = ("id", "source", "tools", "conversation", "target", "provenance")
        ex = CanonicalExample.model_validate({k: r[k] for k in fields})
        assert validate.check(ex) is None


def test_hammer_names_are_masked_consistently(curated):
    records = [r for f in SPLIT_FILES for r in read_jsonl(curated.output_dir / f)]
    hammer = [r for r in records if r["source"] == "hammer"]
    assert len(hammer) == 2
    for r in hammer:
        names = {t["name"] for t in r["tools"]}
        assert not names & {"get_stock_price", "sum_list"}
        assert set(r["provenance"]["masked_names"].values()) == {"get_stock_price", "sum_list"}
        for call in r["target"]["calls"]:
            assert call["name"] in names and r["provenance"]["masked_names"][call["name"]] == "sum_list"
    others = [r for r in records if r["source"] == "xlam"]
    assert all("masked_names" not in r["provenance"] for r in others)


def test_outputs_card_and_stats(curated):
    out = curated.output_dir
    for name in (*SPLIT_FILES, "quarantine.jsonl", "duplicates.jsonl", "stats.json", "card.md",
                 "tools_per_example.png", "prompt_tokens.png"):
        assert (out / name).exists(), name
    assert (out / "prompt_tokens.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (out / "card.md").read_text()
    for piece in ("## Per source", "## Per number of calls", "## Per split", "## Quarantine reasons",
                  "unparseable_target", "![prompt tokens](prompt_tokens.png)", "xlam_long"):
        assert piece in card
    stats = json.loads((out / "stats.json").read_text())
    assert stats == curated.stats
    assert sum(stats["per_split"].values()) == stats["totals"]["kept"]
    assert stats["prompt_tokens"]["max"] <= stats["prompt_tokens"]["cap"] == 768


def test_same_params_same_bytes(tmp_path):
    def digests(out):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}

    first = curate(mix_params(tmp_path / "in", tmp_path / "a"), track=False)
    second = curate(mix_params(tmp_path / "in", tmp_path / "b"), track=False)
    assert len(digests(first.output_dir)) == 9
    assert digests(first.output_dir) == digests(second.output_dir)
    third = curate(mix_params(tmp_path / "in", tmp_path / "c", seed=1), track=False)
    assert digests(third.output_dir)["train.jsonl"] != digests(first.output_dir)["train.jsonl"]


# ---------------------------------------------------------------- steps on their own


def _ex(i: int, source: str, calls: int, text: str | None = None) -> CanonicalExample:
    tool = Tool(name="f", parameters={"type": "object", "properties": {"x": {}}, "required": []})
    return CanonicalExample(id=f"{source}:{i}", source=source, tools=[tool],
                   conversation=[Message(role="user", content=text or f"question number {i} about topic {i * 7}")],
                   target=Target(calls=[Call(name="f", arguments={"x": i})] * calls, response=None if calls else "ok"))


def test_split_is_stratified_and_order_free():
    exs = [_ex(i, s, i % 4) for s in ("a", "b") for i in range(80)]
    fractions = {"train": 0.8, "val": 0.1, "test": 0.1}
    got = split.assign(exs, fractions, seed=0)
    shuffled = exs[:]
    random.Random(3).shuffle(shuffled)
    assert split.assign(shuffled, fractions, seed=0) == got
    for s in ("a", "b"):
        for bucket in ("0", "1", "2", "3+"):
            members = [e.id for e in exs if split.stratum(e) == (s, bucket)]
            counts = {k: sum(got[m] == k for m in members) for k in split.SPLITS}
            assert counts == split.split_sizes(len(members), fractions) == {"train": 16, "val": 2, "test": 2}
    # another source joining the mix does not move this one's examples
    more = split.assign(exs + [_ex(i, "c", 1) for i in range(30)], fractions, seed=0)
    assert {k: v for k, v in more.items() if not k.startswith("c:")} == got
    assert split.assign(exs, fractions, seed=1) != got


def test_no_call_share_cap_picks_by_hash_and_respects_the_share():
    def rec(i, calls):
        return {"id": f"s:{i}", "target": {"calls": [{"name": "f"}] * calls}}

    records = [rec(i, 1) for i in range(30)] + [rec(i, 0) for i in range(30, 100)]
    excess = curate_mod.no_call_excess(records, 0.25, seed=0)
    assert len(excess) == 60 and all(int(i[2:]) >= 30 for i in excess)  # keeps 10 = 0.25 of 40
    assert curate_mod.no_call_excess(records[::-1], 0.25, seed=0) == excess  # order-free
    assert curate_mod.no_call_excess(records, 0.25, seed=1) != excess
    assert curate_mod.no_call_excess(records, None, seed=0) == set()
    assert curate_mod.no_call_excess(records, 1.0, seed=0) == set()
    assert curate_mod.no_call_excess(records, 0.75, seed=0) == set()  # 70 % is under the cap


def test_capped_no_call_examples_are_quarantined_with_their_reason(tmp_path):
    capped = curate(mix_params(tmp_path / "in", tmp_path / "out", max_no_call_share=0.1), track=False)
    t = capped.totals
    assert t["read"] + t["generated"] == t["kept"] + t["quarantined"] + t["duplicates"]
    kept = [r for f in SPLIT_FILES for r in read_jsonl(capped.output_dir / f)]
    no_call = [r for r in kept if not r["target"]["calls"]]
    assert len(no_call) <= 0.1 * len(kept) / 0.9 + 1e-9
    entries = [e for e in read_jsonl(capped.output_dir / "quarantine.jsonl") if e["reason"] == "no_call_share_cap"]
    assert entries and capped.stats["quarantine_reasons"]["no_call_share_cap"] == len(entries)
    assert all("data.max_no_call_share=0.1" in e["detail"] for e in entries)


def test_dedup_threshold():
    base = "please find the cheapest flight from san francisco to new york next friday morning for two adults"
    a, b = _ex(1, "s", 1, base), _ex(2, "s", 1, base.replace("friday", "monday"))
    b = b.model_copy(update={"target": a.target})
    kept, dups = dedup.deduplicate([a, b], threshold=0.9)
    assert [e.id for e in kept] == ["s:1"] and dups[0].kind == "near"
    kept, dups = dedup.deduplicate([a, b], threshold=1.0)
    assert len(kept) == 2 and not dups
    different = _ex(3, "s", 1, "what is the weather in paris")
    assert len(dedup.deduplicate([a, different], threshold=0.5)[0]) == 2


def test_masking_covers_history_results_and_parameters():
    src = SourceParams(name="toolace", location="unused")
    from data_fixtures import TOOLACE_RECORDS

    from toolrl.data.readers import RawRecord

    ex = toolace.convert(RawRecord(index=0, record=TOOLACE_RECORDS[0]), src, DataParams())[2]
    masked = masking.mask(ex, seed=0, param_names=True)
    back = masked.provenance["masked_names"]
    assert set(back.values()) == {"Get Weather", "Convert Units"}
    history = formats.parse(masked.conversation[1].content)
    assert {c.name for c in history.calls} <= set(back) and "Get Weather" not in masked.conversation[1].content
    assert "Get Weather" not in masked.conversation[2].content  # tool results' names
    assert validate.check(masked) is None  # parameters renamed in schema, required and target alike
    assert masking.mask(ex, seed=0, param_names=True) == masked  # deterministic
    assert masking.mask(ex, seed=1).tools[0].name != masked.tools[0].name


# ---------------------------------------------------------------- MLflow, CLI


def test_card_and_counts_are_logged_to_mlflow(tmp_path, mlflow_uri):
    import mlflow

    params = mix_params(tmp_path / "in", tmp_path / "out")
    params.tracking = TrackingParams(tracking_uri=mlflow_uri, artifact_root=str(tmp_path / "art"))
    started = time.perf_counter()
    result = curate(params)
    wall = time.perf_counter() - started
    run = mlflow.MlflowClient(tracking_uri=mlflow_uri).get_run(result.mlflow_run_id)
    assert run.data.metrics["curate/kept"] == 11 and run.data.metrics["curate/quarantine_prompt_too_long"] == 1
    # the curation itself counts, not only the logging after it (the run opens once it is done)
    assert 0.5 * wall <= run.data.metrics["system/stage_seconds"] <= wall
    assert run.data.tags["toolrl.stage"] == "curate" and run.data.params["curate.seed"] == "0"
    names = {a.path for a in mlflow.MlflowClient(tracking_uri=mlflow_uri).list_artifacts(result.mlflow_run_id, "data_card")}
    assert names == {"data_card/card.md", "data_card/stats.json", "data_card/tools_per_example.png",
                     "data_card/prompt_tokens.png"}


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "toolrl.cli", "data", "curate", *args],
                          capture_output=True, text=True, cwd=cwd)


def test_cli_curates_and_reports_bad_sources(tmp_path):
    params = {"data": {"sources": mix_sources(tmp_path / "in"), "output_dir": str(tmp_path / "out")}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    ok = _cli("--no-track", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "quarantined" in ok.stderr and (tmp_path / "out" / "card.md").exists()
    bad = _cli("--no-track", "-S", "data.sources=[{name: xlam, location: missing/file.jsonl}]", cwd=tmp_path)
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "missing/file.jsonl" in bad.stderr and lines[0].startswith("error:")
    held_out = _cli("--no-track", "-S", "data.sources=[{name: bfcl, categories: [parallel]}]", cwd=tmp_path)
    assert held_out.returncode == 2 and "held out" in held_out.stderr
