"""What every source module shares: how ids, provenance and quarantine entries are made.

A source module exposes two functions:

- `records(src) -> list[RawRecord]`: the upstream records, in source order;
- `convert(raw, src, data) -> list[CanonicalExample | Rejected]`: the examples one upstream record yields
  (several for a multi-turn dialogue), or why it yields none.
"""

from __future__ import annotations

import hashlib
from typing import Any

from toolrl.config import DataParams, SourceParams
from toolrl.data.readers import RawRecord
from toolrl.data.schema import Rejected

# Reasons for records that cannot be turned into an example at all (docs/DATA.md lists them all).
UNPARSEABLE_RECORD = "unparseable_record"
INVALID_TOOLS = "invalid_tools"
UNPARSEABLE_TARGET = "unparseable_target"
NO_TARGET_TURN = "no_target_turn"
NO_ACCEPTABLE_VALUE = "no_acceptable_value"


def example_id(src: SourceParams, raw: RawRecord, turn: int | None = None, upstream: Any = None) -> str:
    """`<label>:<upstream id or index>[:t<turn>]`: stable across runs and unique within a mix."""
    key = str(upstream) if upstream not in (None, "") else str(raw.index)
    return f"{src.tag}:{key}" + (f":t{turn}" if turn is not None else "")


def no_call_response(data: DataParams, example_id: str) -> str:
    """The direct answer of a no-call example without one of its own: one of
    `data.no_call_responses`, picked by a hash of the id (stable, and spread evenly over the set)."""
    options = data.no_call_responses
    h = int.from_bytes(hashlib.sha256(example_id.encode()).digest()[:8], "big")
    return options[h % len(options)]


def provenance(src: SourceParams, raw: RawRecord, **extra: Any) -> dict[str, Any]:
    where = {"source": src.name, "location": src.location, "index": raw.index, **raw.provenance, **extra}
    return {k: v for k, v in where.items() if v is not None}


def reject(src: SourceParams, raw: RawRecord, reason: str, detail: str, *, turn: int | None = None,
           upstream: Any = None) -> Rejected:
    return Rejected(
        reason=reason,
        detail=detail,
        source=src.tag,
        provenance=provenance(src, raw, turn=turn),
        id=example_id(src, raw, turn, upstream),
        record=raw.record,
    )


def as_json_value(value: Any, what: str) -> Any:
    """Fields that upstream stores either as JSON strings or as decoded values."""
    import json

    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{what} is not valid JSON ({exc.msg})") from None
    return value
