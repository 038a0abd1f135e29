"""ToolACE (Team-ACE/ToolACE): `{system, conversations: [{from, value}]}`.

The system prompt carries the tool list as JSON after "Here is a list of functions in JSON format
that you can invoke"; assistant turns are either calls in ToolACE's bracket syntax
(`[Get Weather(city="Paris", days=3), Other()]`; names may hold spaces) or a plain answer; tool
turns hold the results. Each assistant turn becomes one example whose history is every earlier turn
(`turns: last` keeps only the final one); past calls are shown in the output format.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from toolrl.config import DataParams, SourceParams
from toolrl.data import base
from toolrl.data.readers import RawRecord, read_records
from toolrl.data.schema import Call, CanonicalExample, Converted, Message, Target, history_turn
from toolrl.data.tool_schema import normalize_tools

MARKER = re.compile(r"Here is a list of functions in JSON format that you can invoke\s*[.:]?\s*", re.IGNORECASE)
ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant", "tool": "tool",
         "function": "tool", "observation": "tool"}
CALL_HEAD = re.compile(r"\s*([^()\[\],=\"'\n]+?)\s*\(")
_NAMES = {"True": True, "False": False, "None": None, "true": True, "false": False, "null": None}


def records(src: SourceParams) -> list[RawRecord]:
    return read_records(src.location, src.split)


def parse_tool_list(system: str) -> Any:
    m = MARKER.search(system)
    if not m:
        raise ValueError("system prompt has no 'list of functions in JSON format'")
    try:
        tools, _ = json.JSONDecoder().raw_decode(system[m.end():])
    except json.JSONDecodeError as exc:
        raise ValueError(f"tool list after the marker is not JSON ({exc.msg})") from None
    return tools


def _literal(node: ast.AST) -> Any:
    """A Python or JSON literal (true/false/null accepted); anything else raises ValueError."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in _NAMES:
        return _NAMES[node.id]
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _literal(node.operand)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    raise ValueError(f"argument value {ast.unparse(node)!r} is not a literal")


def _closing(text: str, open_at: int) -> int:
    """Index of the parenthesis closing the one at `open_at`, skipping strings and nesting."""
    depth, quote, i = 0, None, open_at
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError("unbalanced parentheses in the call list")


def looks_like_calls(text: str) -> bool:
    s = text.strip()
    return s.startswith("[") and s.endswith("]") and CALL_HEAD.match(s, 1) is not None


def parse_calls(text: str) -> list[Call]:
    """`[Name(a=1, b="x"), Other()]` -> calls. Raises ValueError when it cannot be read."""
    body = text.strip()[1:-1]
    calls, pos = [], 0
    while True:
        while pos < len(body) and body[pos] in " ,\n\t":
            pos += 1
        if pos >= len(body):
            break
        m = CALL_HEAD.match(body, pos)
        if not m:
            raise ValueError(f"expected a call at {body[pos:pos + 30]!r}")
        end = _closing(body, m.end() - 1)
        try:
            expr = ast.parse(f"f({body[m.end():end]})", mode="eval").body
        except SyntaxError as exc:
            raise ValueError(f"arguments of {m.group(1)!r} are not Python syntax ({exc.msg})") from None
        if not isinstance(expr, ast.Call) or expr.args or any(k.arg is None for k in expr.keywords):
            raise ValueError(f"call {m.group(1)!r} must use keyword arguments only")
        calls.append(Call(name=m.group(1).strip(), arguments={k.arg: _literal(k.value) for k in expr.keywords}))
        pos = end + 1
    if not calls:
        raise ValueError("empty call list")
    return calls


def _turn_target(value: str) -> Target:
    if looks_like_calls(value):
        return Target(calls=parse_calls(value))
    return Target(response=value.strip())


def convert(raw: RawRecord, src: SourceParams, data: DataParams) -> list[Converted]:
    rec: Any = raw.record
    if raw.error:
        return [base.reject(src, raw, base.UNPARSEABLE_RECORD, raw.error)]
    if not isinstance(rec, dict) or not isinstance(rec.get("system"), str):
        return [base.reject(src, raw, base.UNPARSEABLE_RECORD, "needs a `system` string and `conversations`")]
    upstream = rec.get("id")
    try:
        convs = base.as_json_value(rec.get("conversations"), "conversations")
        if not isinstance(convs, list) or not all(isinstance(t, dict) for t in convs):
            raise ValueError("conversations is not a list of {from, value} objects")
    except ValueError as exc:
        return [base.reject(src, raw, base.UNPARSEABLE_RECORD, str(exc), upstream=upstream)]
    try:
        tools = normalize_tools(parse_tool_list(rec["system"]))
    except ValueError as exc:
        return [base.reject(src, raw, base.INVALID_TOOLS, str(exc), upstream=upstream)]
    history: list[Message] = []
    converted: list[Converted] = []
    for turn, msg in enumerate(convs):
        role = ROLES.get(str(msg.get("from", msg.get("role", ""))).lower())
        value = msg.get("value", msg.get("content"))
        if role is None or not isinstance(value, str):
            return [base.reject(src, raw, base.UNPARSEABLE_RECORD,
                                f"turn {turn}: unknown role {msg.get('from')!r} or non-text value")]
        if role != "assistant":
            history.append(Message(role=role, content=value))
            continue
        try:
            target = _turn_target(value)
        except ValueError as exc:
            converted.append(base.reject(src, raw, base.UNPARSEABLE_TARGET, f"turn {turn}: {exc}", turn=turn,
                                        upstream=upstream))
            history.append(Message(role="assistant", content=value))
            continue
        if history and history[-1].role != "assistant":
            converted.append(CanonicalExample(
                id=base.example_id(src, raw, turn, upstream), source=src.tag, tools=tools,
                conversation=list(history), target=target,
                provenance=base.provenance(src, raw, turn=turn, upstream_id=upstream),
            ))
        history.append(history_turn(target.calls, target.response))
    if not converted:
        return [base.reject(src, raw, base.NO_TARGET_TURN, "the conversation has no assistant turn to learn",
                            upstream=upstream)]
    if src.turns == "last":
        return [converted[-1]]
    return converted
