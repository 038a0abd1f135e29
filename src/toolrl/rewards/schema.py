"""Schema-aware value matching (the `schema_*` variants): a predicted value counts as equal to the
ground truth when both mean the same thing under the parameter's declared type.

Why: ground truths carry no types, and many are written loosely (ToolRL's data has `"page": "1"`
where the tool declares an integer). Python `==` then punishes the model that follows the schema
(`1`), and rewards `true` for an integer 1 (`True == 1` in Python). With the tool's JSON schema:

- integer: ints, integral floats and integer strings coerce to int (`"1"`, `1`, `1.0` are equal);
  booleans are not integers (JSON Schema says so), so `true` no longer equals 1;
- number: floats and numeric strings coerce to float and compare with a relative tolerance of 1e-6
  (decimal text round-trips: `0.1 + 0.2` written out is not `0.3`);
- boolean: JSON booleans and the strings "true"/"false" in any case (`"True"` is common in data);
- string: equal after stripping surrounding whitespace; case-insensitive only when the schema lists
  an `enum` (labels such as units or modes, where case is convention), case-sensitive otherwise
  (names, ids, queries: an API may well distinguish them); a number is not a string;
- array / object: element-wise / key-wise with the `items` / `properties` schemas;
- a ground-truth value that does not fit its declared type, no schema, an unknown type: Python `==`,
  as the reference (the schema cannot say what such a value means).

Type names follow JSON Schema and BFCL's aliases (dict, float, tuple, list, str, int, bool).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_INT = re.compile(r"[+-]?\d{1,60}")
_MAX_NUMERIC_TEXT = 100  # longer strings are not numbers a tool takes; also keeps int() cheap
REL_TOL, ABS_TOL = 1e-6, 1e-12

TYPE_ALIASES = {
    "integer": "integer", "int": "integer",
    "number": "number", "float": "number", "double": "number",
    "boolean": "boolean", "bool": "boolean",
    "string": "string", "str": "string",
    "array": "array", "list": "array", "tuple": "array",
    "object": "object", "dict": "object",
}


class ToolsError(ValueError):
    """A `tools` value the schema-aware variants cannot read."""


def tool_properties(tools: Any) -> dict[str, dict[str, Any]]:
    """{tool name: {parameter name: schema}} from the example's tools.

    Accepts the curated record's list of `{"name", "parameters": {"properties": ...}}`, OpenAI's
    `{"type": "function", "function": {...}}` wrapping, or either as a JSON string. Entries that
    `datasets` fills with None (it unifies struct columns across rows) are skipped.
    """
    if tools is None:
        return {}
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except ValueError as exc:
            raise ToolsError(f"tools is a string but not JSON ({exc}); pass the example's tools list") from None
    if isinstance(tools, dict):
        tools = [tools]
    if not isinstance(tools, list):
        raise ToolsError(f"tools must be a list of tool objects, got {type(tools).__name__}")
    out: dict[str, dict[str, Any]] = {}
    for tool in tools:
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
            tool = tool["function"]
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise ToolsError(f"each tool needs a string name, got {str(tool)[:80]!r}")
        params = tool.get("parameters")
        props = params.get("properties", params) if isinstance(params, dict) else None
        if isinstance(props, dict):
            out[tool["name"]] = {k: v for k, v in props.items() if isinstance(v, dict)}
        else:
            out[tool["name"]] = {}
    return out


def _declared_types(schema: dict[str, Any]) -> list[str]:
    declared = schema.get("type")
    names = declared if isinstance(declared, list) else [declared]
    return [TYPE_ALIASES[t.lower()] for t in names if isinstance(t, str) and t.lower() in TYPE_ALIASES]


def _as_int(x: Any) -> int | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, int):
        return x
    if isinstance(x, float):
        return int(x) if x.is_integer() else None
    if isinstance(x, str) and len(x) <= _MAX_NUMERIC_TEXT:
        s = x.strip()
        if _INT.fullmatch(s):
            return int(s)
        f = _as_float(s)
        return int(f) if f is not None and f.is_integer() else None
    return None


def _as_float(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, float):
        return x
    if isinstance(x, int):
        try:
            return float(x)
        except OverflowError:
            return None
    if isinstance(x, str) and len(x) <= _MAX_NUMERIC_TEXT:
        try:
            return float(x.strip())
        except ValueError:
            return None
    return None


def _as_bool(x: Any) -> bool | None:
    if isinstance(x, bool):
        return x
    if isinstance(x, str):
        s = x.strip().lower()
        if s in ("true", "false"):
            return s == "true"
    return None


def _typed_equal(gt: Any, predicted: Any, kind: str, schema: dict[str, Any]) -> bool | None:
    """Equality under one declared type. None when the ground truth itself does not fit the type (the
    schema then says nothing about it); False when it fits and the prediction does not."""
    if kind == "integer":
        a = _as_int(gt)
        if a is None:
            return None
        b = _as_int(predicted)
        return b is not None and a == b
    if kind == "number":
        a = _as_float(gt)
        if a is None:
            return None
        b = _as_float(predicted)
        return b is not None and math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    if kind == "boolean":
        a = _as_bool(gt)
        if a is None:
            return None
        return _as_bool(predicted) is a
    if kind == "string":
        if not isinstance(gt, str):
            return None
        if not isinstance(predicted, str):
            return False
        if schema.get("enum"):
            return gt.strip().casefold() == predicted.strip().casefold()
        return gt.strip() == predicted.strip()
    if kind == "array":
        if not isinstance(gt, list):
            return None
        if not isinstance(predicted, list) or len(gt) != len(predicted):
            return False
        items = schema.get("items")
        return all(values_equal(g, p, items) for g, p in zip(gt, predicted, strict=True))
    if kind == "object":
        if not isinstance(gt, dict):
            return None
        if not isinstance(predicted, dict) or gt.keys() != predicted.keys():
            return False
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        return all(values_equal(v, predicted[k], props.get(k)) for k, v in gt.items())
    return None


def values_equal(gt: Any, predicted: Any, schema: Any) -> bool:
    """Whether predicted `predicted` matches ground truth `gt` for a parameter declared by `schema`; the
    first declared type the ground truth fits decides."""
    if isinstance(schema, dict):
        for kind in _declared_types(schema):
            same = _typed_equal(gt, predicted, kind, schema)
            if same is not None:
                return same
    return predicted == gt
