"""xLAM (Salesforce/xlam-function-calling-60k): `{id, query, tools, answers}`.

`tools` and `answers` are JSON strings (or already-decoded lists): tools in the flat style
(`{"param": {"type": "str, optional", "description", "default"}}`, a parameter is required unless its
type says `optional`), answers as `[{"name", "arguments"}]`. An empty answer list (as in Hammer's
irrelevance data) becomes a no-call example answered directly with one of `data.no_call_responses`.
"""

from __future__ import annotations

from typing import Any

from toolrl.config import DataParams, SourceParams
from toolrl.data import base
from toolrl.data.readers import RawRecord, read_records
from toolrl.data.schema import Call, CanonicalExample, Converted, Message, Target
from toolrl.data.tool_schema import normalize_tools


def records(src: SourceParams) -> list[RawRecord]:
    return read_records(src.location, src.split)


def parse_answers(value: Any) -> list[Call]:
    answers = base.as_json_value(value, "answers")
    if answers is None:
        return []
    if not isinstance(answers, list):
        raise ValueError(f"answers is {type(answers).__name__}, not a list")
    calls = []
    for i, ans in enumerate(answers, start=1):
        if not isinstance(ans, dict) or not isinstance(ans.get("name"), str):
            raise ValueError(f"answer {i} has no name")
        args = ans.get("arguments", ans.get("parameters")) or {}
        args = base.as_json_value(args, f"answer {i} arguments")
        if not isinstance(args, dict):
            raise ValueError(f"answer {i} arguments are not an object")
        calls.append(Call(name=ans["name"], arguments=args))
    return calls


def convert(raw: RawRecord, src: SourceParams, data: DataParams) -> list[Converted]:
    rec: Any = raw.record
    if raw.error:
        return [base.reject(src, raw, base.UNPARSEABLE_RECORD, raw.error)]
    if not isinstance(rec, dict) or not isinstance(rec.get("query"), str) or "tools" not in rec:
        return [base.reject(src, raw, base.UNPARSEABLE_RECORD, "needs fields query (text), tools, answers")]
    upstream = rec.get("id")
    try:
        tools = normalize_tools(rec["tools"], required_unless_optional=True)
    except ValueError as exc:
        return [base.reject(src, raw, base.INVALID_TOOLS, str(exc), upstream=upstream)]
    try:
        calls = parse_answers(rec.get("answers"))
    except ValueError as exc:
        return [base.reject(src, raw, base.UNPARSEABLE_TARGET, str(exc), upstream=upstream)]
    eid = base.example_id(src, raw, upstream=upstream)
    target = Target(calls=calls) if calls else Target(response=base.no_call_response(data, eid))
    return [CanonicalExample(
        id=eid, source=src.tag, tools=tools,
        conversation=[Message(role="user", content=rec["query"])], target=target,
        provenance=base.provenance(src, raw, upstream_id=upstream, no_call=not calls or None),
    )]
