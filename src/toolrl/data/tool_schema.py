"""Tool definitions from every upstream style, as JSON schema.

Upstream sources describe parameters three ways:

- JSON-schema style (`{"type": "dict"|"object", "properties": {...}, "required": [...]}`) with
  BFCL's Gorilla type names (`dict`, `float`, `tuple`, `any`, ...) or ToolACE's;
- flat (`{"param": {"type": "str, optional", "description": ..., "default": ...}}`, xLAM / ToolRL),
  with Python-style type strings (`List[int]`, `Optional[str]`, `Tuple[float, float]`);
- nothing at all (a tool without parameters).

`normalize_tool` turns each into `{"name", "description", "parameters": {"type": "object",
"properties": {..}, "required": [..]}}` with JSON-schema types (`string`, `integer`, `number`,
`boolean`, `array`, `object`; no `type` means any value). Gorilla names follow BFCL's own
GORILLA_TO_OPENAPI table, except `any`, which stays untyped instead of becoming `string`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from toolrl.data.schema import Tool

_BASE = {
    "string": "string", "str": "string", "char": "string", "text": "string",
    "integer": "integer", "int": "integer", "long": "integer", "short": "integer", "byte": "integer",
    "bigint": "integer",
    "number": "number", "float": "number", "double": "number", "decimal": "number",
    "boolean": "boolean", "bool": "boolean",
    "array": "array", "list": "array", "tuple": "array", "set": "array", "sequence": "array",
    "arraylist": "array", "queue": "array", "stack": "array", "iterable": "array",
    "dict": "object", "object": "object", "hashmap": "object", "hashtable": "object", "mapping": "object",
    "map": "object",
}
_UNTYPED = {"any", "none", "callable", "null", "function", "unknown", ""}
_OPTIONAL_SUFFIX = re.compile(r"\s*,\s*optional\s*$", re.IGNORECASE)


def _split_args(text: str) -> list[str]:
    """`int, List[str]` -> ["int", "List[str]"] (commas inside brackets do not split)."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def type_schema(raw: Any) -> tuple[dict[str, Any], bool]:
    """A type as written upstream -> (JSON-schema fragment, marked optional).

    Unknown names give `{}` (any value): a type we cannot read must not make a valid call fail.
    """
    if isinstance(raw, list):  # JSON schema's union form
        frags = [type_schema(t)[0] for t in raw if str(t).lower() != "null"]
        types = sorted({f["type"] for f in frags if "type" in f})
        if len(types) == 1 and all("type" in f for f in frags):
            return {"type": types[0]}, "null" in [str(t).lower() for t in raw]
        return ({"type": types} if types and all("type" in f for f in frags) else {}), False
    if not isinstance(raw, str):
        return {}, False
    text = raw.strip()
    optional = bool(_OPTIONAL_SUFFIX.search(text))
    text = _OPTIONAL_SUFFIX.sub("", text)
    m = re.fullmatch(r"([A-Za-z_][\w.]*)\s*\[(.*)\]", text, re.DOTALL)
    head, inner = (m.group(1), m.group(2)) if m else (text, None)
    key = head.split(".")[-1].lower()
    if key == "optional" and inner is not None:
        frag, _ = type_schema(inner)
        return frag, True
    if key == "union" and inner is not None:
        args = _split_args(inner)
        frag, _ = type_schema(args)
        return frag, optional or any(a.strip().lower() == "none" for a in args)
    if key == "literal" and inner is not None:
        return {}, optional
    if key in _UNTYPED or key not in _BASE:
        return {}, optional
    frag: dict[str, Any] = {"type": _BASE[key]}
    if frag["type"] == "array" and inner:
        args = _split_args(inner)
        if len(args) == 1 or key != "tuple":
            items, _ = type_schema(args[0])
            if items:
                frag["items"] = items
    return frag, optional


def property_schema(raw: Any) -> dict[str, Any]:
    """One parameter's schema, recursively converted (nested `properties`, `items`)."""
    if not isinstance(raw, dict):
        raise ValueError(f"parameter schema is {type(raw).__name__}, not an object")
    out: dict[str, Any] = {}
    frag, _ = type_schema(raw.get("type"))
    for key, value in raw.items():
        if key == "type":
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {k: property_schema(v) for k, v in value.items()}
        elif key == "items" and isinstance(value, dict):
            out[key] = property_schema(value)
        elif key == "required" and not isinstance(value, list):
            continue  # ToolACE writes `"required": null` / booleans on single parameters
        else:
            out[key] = value
    if "items" in frag and "items" not in out:
        out["items"] = frag["items"]
    if "type" in frag:
        out = {"type": frag["type"], **out}
    return out


def _is_optional(raw: Any) -> bool:
    return isinstance(raw, dict) and type_schema(raw.get("type"))[1]


def normalize_parameters(raw: Any, *, required_unless_optional: bool = False) -> dict[str, Any]:
    """Any upstream parameter description -> `{"type": "object", "properties", "required"}`.

    `required_unless_optional`: for flat descriptions without a required list (xLAM), a parameter
    is required unless its type says `optional`.
    """
    if raw is None or raw == {} or raw == []:
        return {"type": "object", "properties": {}, "required": []}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise ValueError("parameters are a string that is not JSON") from None
    if not isinstance(raw, dict):
        raise ValueError(f"parameters are {type(raw).__name__}, not an object")
    if isinstance(raw.get("properties"), dict):
        props = {str(k): property_schema(v) for k, v in raw["properties"].items()}
        required = raw.get("required") or []
        if not isinstance(required, list):
            raise ValueError(f"`required` is {type(required).__name__}, not a list")
    elif "properties" in raw or raw.get("type") in ("object", "dict"):
        props = {}
        required = raw.get("required") or []
    else:  # flat: every key is a parameter
        props = {str(k): property_schema(v) for k, v in raw.items()}
        required = [k for k, v in raw.items() if required_unless_optional and not _is_optional(v)]
    missing = [r for r in required if r not in props]
    if missing:
        raise ValueError(f"required parameter(s) {missing} are not among the properties")
    return {"type": "object", "properties": props, "required": list(dict.fromkeys(required))}


def normalize_tool(raw: Any, *, required_unless_optional: bool = False) -> Tool:
    """One upstream tool definition -> `Tool`. Raises ValueError naming what is wrong."""
    if isinstance(raw, dict) and raw.get("type") == "function" and isinstance(raw.get("function"), dict):
        raw = raw["function"]  # OpenAI-style wrapper
    if not isinstance(raw, dict):
        raise ValueError(f"tool is {type(raw).__name__}, not an object")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("tool has no name")
    description = raw.get("description") or ""
    params = normalize_parameters(raw.get("parameters"), required_unless_optional=required_unless_optional)
    return Tool(name=name.strip(), description=str(description), parameters=params)


def normalize_tools(raws: Any, *, required_unless_optional: bool = False) -> list[Tool]:
    """A tool list; identical repeats are merged, conflicting ones raise ValueError."""
    if isinstance(raws, str):
        try:
            raws = json.loads(raws)
        except json.JSONDecodeError as exc:
            raise ValueError(f"tool list is not valid JSON ({exc.msg})") from None
    if isinstance(raws, dict):
        raws = [raws]
    if not isinstance(raws, list):
        raise ValueError(f"tool list is {type(raws).__name__}, not a list")
    tools: dict[str, Tool] = {}
    for i, raw in enumerate(raws):
        try:
            tool = normalize_tool(raw, required_unless_optional=required_unless_optional)
        except ValueError as exc:
            raise ValueError(f"tool {i + 1}: {exc}") from None
        if tool.name in tools and tools[tool.name] != tool:
            raise ValueError(f"two different tools are named {tool.name!r}")
        tools.setdefault(tool.name, tool)
    return list(tools.values())
