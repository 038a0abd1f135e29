"""Check every target call against its tool's schema.

A call is valid when its tool exists, every required parameter is present, no parameter is unknown,
and every value is coercible to the declared JSON-schema type (`"5"` is an integer, `5` a string,
`{"a": 1}` is not a string). Values are checked, never rewritten: the target stays as the source
wrote it. Last, the rendered completion must parse back to the same calls and response (what the
reward and the TRM read). The first problem found becomes the quarantine reason.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from toolrl import formats
from toolrl.data.schema import CanonicalExample, completion_text

# Quarantine reasons produced here (docs/DATA.md lists every reason).
EMPTY_TARGET = "empty_target"
UNKNOWN_TOOL = "unknown_tool"
MISSING_REQUIRED = "missing_required_parameter"
UNKNOWN_PARAMETER = "unknown_parameter"
TYPE_MISMATCH = "type_mismatch"
UNRENDERABLE = "unrenderable_target"

_INT = re.compile(r"[+-]?\d+")


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            return None
        return out if math.isfinite(out) else None
    return None


def _json_container(value: Any, kind: type) -> Any:
    """A JSON string holding a list/object counts as that container."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, kind) else None
    return None


def coercible(value: Any, schema: dict[str, Any]) -> bool:
    """Whether `value` can be read as the type `schema` declares (recursing into items/properties)."""
    kind = schema.get("type")
    if kind is None:
        return True
    if isinstance(kind, list):
        return any(coercible(value, {**schema, "type": k}) for k in kind)
    if value is None:
        return kind == "null"
    if kind == "string":
        return isinstance(value, str | int | float | bool)
    if kind == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return True
        if isinstance(value, float):
            return value.is_integer()
        return isinstance(value, str) and bool(_INT.fullmatch(value.strip()))
    if kind == "number":
        return _as_number(value) is not None
    if kind == "boolean":
        if isinstance(value, bool):
            return True
        if isinstance(value, int):
            return value in (0, 1)
        return isinstance(value, str) and value.strip().lower() in ("true", "false")
    if kind == "array":
        items = value if isinstance(value, list | tuple) else _json_container(value, list)
        if items is None:
            return False
        sub = schema.get("items")
        return not isinstance(sub, dict) or all(coercible(v, sub) for v in items)
    if kind == "object":
        obj = value if isinstance(value, dict) else _json_container(value, dict)
        if obj is None:
            return False
        props = schema.get("properties")
        if not isinstance(props, dict):
            return True
        return all(coercible(v, props[k]) for k, v in obj.items() if k in props and isinstance(props[k], dict))
    if kind == "null":
        return value is None
    return True  # a type JSON schema does not define: nothing to check against


def check(example: CanonicalExample) -> tuple[str, str] | None:
    """None if every call of the target is valid, else (reason, detail) of the first problem."""
    target = example.target
    if not target.calls and not (target.response and target.response.strip()):
        return EMPTY_TARGET, "the target has neither a tool call nor a response"
    tools = {t.name: t for t in example.tools}
    for n, call in enumerate(target.calls, start=1):
        tool = tools.get(call.name)
        if tool is None:
            offered = ", ".join(sorted(tools)) or "none"
            return UNKNOWN_TOOL, f"call {n} names {call.name!r}, not among the tools ({offered})"
        props: dict[str, Any] = tool.parameters.get("properties", {})
        required: list[str] = tool.parameters.get("required", [])
        missing = [r for r in required if r not in call.arguments]
        if missing:
            return MISSING_REQUIRED, f"call {n} ({call.name}) lacks required {missing}"
        unknown = [a for a in call.arguments if a not in props]
        if unknown:
            return UNKNOWN_PARAMETER, f"call {n} ({call.name}) passes {unknown}, not in its schema"
        for arg, value in call.arguments.items():
            schema = props[arg] if isinstance(props[arg], dict) else {}
            if value is None and arg not in required:
                continue  # an explicit null for an optional parameter means "use the default"
            if not coercible(value, schema):
                shown = json.dumps(value, ensure_ascii=False)
                shown = shown if len(shown) <= 80 else shown[:77] + "..."
                return TYPE_MISMATCH, (f"call {n} ({call.name}): {arg}={shown} is not "
                                       f"{schema.get('type')}")
    return _round_trip(example)


def _round_trip(example: CanonicalExample) -> tuple[str, str] | None:
    """The rendered completion must parse back to the target: the reward and TRM read it that way."""
    target = example.target
    parsed = formats.parse(completion_text(target))
    calls = [(c.name, c.arguments) for c in parsed.calls]
    if not parsed.ok or calls != [(c.name, c.arguments) for c in target.calls] or (
            (parsed.response or None) != (target.response.strip() if target.response else None)):
        return UNRENDERABLE, f"the rendered completion does not parse back ({parsed.error or 'content differs'})"
    return None
