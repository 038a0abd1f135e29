"""ToolRL's own data (`rlla`): records `{instruction, input, output}` already in the ToolRL format.

- `instruction`: the system prompt; its "**Available Tools**" section lists tools as
  `N. Name: ...` / `Description: ...` / `Parameters: {json}` (and, when written by this project,
  `Required: [..]`);
- `input`: "**Dialogue Records History**" then `<user> .. </user>`, `<obs> .. </obs>` and past
  assistant turns (`<think>`, `<tool_call>`, `<response>` blocks);
- `output`: the target turn in the output format.

ToolRL's listing drops the required list; when a tool marks some parameters `optional` (xLAM's
convention) the others are taken as required, otherwise none is.
"""

from __future__ import annotations

import json
import re
from typing import Any

from toolrl import formats
from toolrl.config import DataParams, SourceParams
from toolrl.data import base
from toolrl.data.readers import RawRecord, read_records
from toolrl.data.schema import Call, CanonicalExample, Converted, Message, Target, Tool
from toolrl.data.tool_schema import normalize_parameters

TOOLS_HEAD = "**Available Tools**"
TOOL_START = re.compile(r"(?m)^\d+\.\s*Name:\s*")
SEGMENT = re.compile(r"<user>(.*?)</user>|<obs>(.*?)</obs>", re.DOTALL)


def records(src: SourceParams) -> list[RawRecord]:
    return read_records(src.location, src.split)


def _tool(chunk: str) -> Tool:
    name, _, rest = chunk.partition("\n")
    desc_at, params_at = rest.find("Description:"), rest.find("\nParameters:")
    if params_at < 0:
        raise ValueError(f"tool {name.strip()!r} has no Parameters line")
    description = rest[desc_at + len("Description:"):params_at].strip() if desc_at >= 0 else ""
    params_text = rest[params_at + len("\nParameters:"):]
    required = None
    req_at = params_text.find("\nRequired:")
    if req_at >= 0:
        required = json.loads(params_text[req_at + len("\nRequired:"):].strip())
        params_text = params_text[:req_at]
    try:
        flat = json.loads(params_text.strip() or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"tool {name.strip()!r}: Parameters are not JSON ({exc.msg})") from None
    if not isinstance(flat, dict):
        raise ValueError(f"tool {name.strip()!r}: Parameters are not an object")
    marks_optional = any("optional" in str(v.get("type", "")).lower() for v in flat.values() if isinstance(v, dict))
    params = normalize_parameters(flat, required_unless_optional=marks_optional)
    if required is not None:
        params = normalize_parameters({"type": "object", "properties": params["properties"], "required": required})
    return Tool(name=name.strip(), description=description, parameters=params)


def parse_tools(instruction: str) -> list[Tool]:
    """The tools listed in a ToolRL system prompt. Raises ValueError if there is no list."""
    at = instruction.find(TOOLS_HEAD)
    if at < 0:
        raise ValueError(f"instruction has no {TOOLS_HEAD} section")
    section = instruction[at + len(TOOLS_HEAD):]
    end = section.find("\n**", 1)
    section = section[:end] if end >= 0 else section
    starts = list(TOOL_START.finditer(section))
    tools = []
    for i, m in enumerate(starts):
        stop = starts[i + 1].start() if i + 1 < len(starts) else len(section)
        tools.append(_tool(section[m.end():stop].strip()))
    names = [t.name for t in tools]
    if len(set(names)) != len(names):
        raise ValueError("two tools share a name")
    return tools


def parse_history(text: str) -> list[Message]:
    """`<user>`/`<obs>` lines and the assistant turns between them -> dialogue messages."""
    text = text.replace(formats.HISTORY_HEAD, "", 1)
    out: list[Message] = []
    pos = 0
    for m in SEGMENT.finditer(text):
        between = text[pos:m.start()].strip()
        if between:
            out.append(Message(role="assistant", content=between))
        role = "user" if m.group(1) is not None else "tool"
        out.append(Message(role=role, content=(m.group(1) if role == "user" else m.group(2)).strip()))
        pos = m.end()
    tail = text[pos:].strip()
    if tail:
        out.append(Message(role="assistant", content=tail))
    return out


def parse_output(text: str) -> formats.Parsed:
    """The target turn. Calls and response are read after `</think>`: ToolRL's distilled thoughts
    sometimes mention `<tool_call>` in prose, which must not be taken for the call block."""
    parsed = formats.parse(text)
    close = text.find(formats.THINK_CLOSE)
    if parsed.thought is None or close < 0:
        return parsed
    body = formats.parse(text[close + len(formats.THINK_CLOSE):])
    body.thought = parsed.thought
    return body


def convert(raw: RawRecord, src: SourceParams, data: DataParams) -> list[Converted]:
    rec: Any = raw.record
    if raw.error:
        return [base.reject(src, raw, base.UNPARSEABLE_RECORD, raw.error)]
    if not isinstance(rec, dict) or not all(isinstance(rec.get(k), str) for k in ("instruction", "input", "output")):
        return [base.reject(src, raw, base.UNPARSEABLE_RECORD, "needs string fields instruction, input, output")]
    try:
        tools = parse_tools(rec["instruction"])
    except (ValueError, TypeError) as exc:
        return [base.reject(src, raw, base.INVALID_TOOLS, str(exc))]
    conversation = parse_history(rec["input"])
    if not conversation:
        return [base.reject(src, raw, base.UNPARSEABLE_RECORD, "input holds no <user> turn")]
    parsed = parse_output(rec["output"])
    if not parsed.ok:
        return [base.reject(src, raw, base.UNPARSEABLE_TARGET, f"output: {parsed.error}")]
    target = Target(
        thought=parsed.thought or None,
        calls=[Call(name=c.name, arguments=c.arguments) for c in parsed.calls],
        response=parsed.response,
    )
    return [CanonicalExample(id=base.example_id(src, raw), source=src.tag, tools=tools, conversation=conversation,
                    target=target, provenance=base.provenance(src, raw))]
