"""Hard negatives: correct calls perturbed into near misses, and the label balance of a dataset.

A policy early in training makes few calls that are almost right; the TRM must still learn where the
line is. From each correct call (label 1) we make `per_call` copies, each with one perturbation:

- wrong_tool: another listed tool's name (an invented name when there is only one tool);
- wrong_value: one argument's value changed (a string altered, a number moved, a boolean flipped);
- missing_argument: one argument dropped (a required one when there is one);
- invented_argument: an argument the schema does not list;
- wrong_type: one value wrapped in a list (or an array joined into a string);
- extra_call: a needless call after the correct one (a repeat, or a call to another tool).

Every negative is labelled by the rule labeler in its context; a perturbation that happens to leave
the call correct is counted (`noop`) and dropped, so no negative is mislabelled.
"""

from __future__ import annotations

import copy
import json
import random
from collections import Counter
from typing import Any

from toolrl import formats
from toolrl.trm.calls import call_spans
from toolrl.trm.labels import rule_labels

INVENTED_ARGS = ("verbose", "request_id", "user_token", "debug_mode", "locale_hint")


def _tool(tools: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next((t for t in tools if t.get("name") == name), {})


def _properties(tool: dict[str, Any]) -> dict[str, Any]:
    params = tool.get("parameters") or {}
    props = params.get("properties", {}) if isinstance(params, dict) else {}
    return props if isinstance(props, dict) else {}


def _changed(value: Any, rng: random.Random) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rng.choice([1, 2, 7, 10])
    if isinstance(value, float):
        return value * 2 + 1
    if isinstance(value, str):
        return (value + " XYZ") if value else "unknown"
    if isinstance(value, list):
        return value[:-1] if value else ["unknown"]
    if isinstance(value, dict):
        return {}
    return "unknown"


def _placeholder(schema: Any) -> Any:
    kind = schema.get("type") if isinstance(schema, dict) else None
    return {"integer": 1, "number": 1.0, "boolean": True, "array": [], "object": {}}.get(kind, "example")


def perturb(call: formats.ToolCall, kind: str, tools: list[dict[str, Any]],
            rng: random.Random) -> tuple[formats.ToolCall, bool] | None:
    """(perturbed call, whether it comes after the original) or None when `kind` cannot apply."""
    args = copy.deepcopy(call.arguments)
    keys = sorted(args)
    if kind == "wrong_tool":
        others = sorted({t["name"] for t in tools if t.get("name") and t["name"] != call.name})
        return formats.ToolCall(rng.choice(others) if others else f"{call.name}_v2", args), False
    if kind == "wrong_value" and keys:
        k = rng.choice(keys)
        args[k] = _changed(args[k], rng)
        return formats.ToolCall(call.name, args), False
    if kind == "missing_argument" and keys:
        required = _tool(tools, call.name).get("parameters", {}).get("required") or []
        pool = [k for k in keys if k in required] or keys
        args.pop(rng.choice(pool))
        return formats.ToolCall(call.name, args), False
    if kind == "invented_argument":
        props = _properties(_tool(tools, call.name))
        free = [a for a in INVENTED_ARGS if a not in props and a not in args]
        args[rng.choice(free)] = rng.choice([True, 1, "yes"])
        return formats.ToolCall(call.name, args), False
    if kind == "wrong_type" and keys:
        k = rng.choice(keys)
        v = args[k]
        args[k] = ", ".join(map(str, v)) if isinstance(v, list) else (json.dumps(v) if isinstance(v, dict) else [v])
        return formats.ToolCall(call.name, args), False
    if kind == "extra_call":
        others = [t for t in tools if t.get("name") and t["name"] != call.name]
        if others and rng.random() < 0.5:
            tool = rng.choice(others)
            params = tool.get("parameters") if isinstance(tool.get("parameters"), dict) else {}
            required = params.get("required") or []
            props = _properties(tool)
            return formats.ToolCall(tool["name"], {k: _placeholder(props.get(k)) for k in required}), True
        return formats.ToolCall(call.name, args), True
    return None


def hard_negatives(step: dict[str, Any], tools: list[dict[str, Any]], gt_calls: list[formats.ToolCall],
                   kinds: list[str], per_call: int, rng: random.Random, stats: Counter) -> list[dict[str, Any]]:
    """Up to `per_call` labelled negatives from one correct step record (distinct kinds while they last)."""
    try:
        call = formats.parse_call(step["call"])
    except ValueError:
        return []
    out: list[dict[str, Any]] = []
    order = rng.sample(kinds, len(kinds))
    for kind in order:
        if len(out) >= per_call:
            break
        made = perturb(call, kind, tools, rng)
        if made is None:
            stats[f"negative_skipped/{kind}"] += 1
            continue
        bad, after = made
        prefix = step["prefix"] + step["call"] + "\n" if after else step["prefix"]
        text = bad.to_json()
        earlier = call_spans(prefix + text)
        verdict = rule_labels(earlier, gt_calls, tools)[-1]
        if verdict.label:
            stats[f"negative_noop/{kind}"] += 1
            continue
        stats[f"negative/{kind}"] += 1
        out.append({
            **{k: step[k] for k in ("prompt_id", "sample", "prompt")},
            "id": f"{step['id']}/neg-{kind}",
            "call_index": len(earlier) - 1,
            "prefix": prefix,
            "call": text,
            "label": 0,
            "necessity": verdict.necessity,
            "quality": verdict.quality,
            "reason": verdict.reason,
            "rule_label": 0,
            "labeler": "negative",
            "source": "negative",
            "kind": kind,
        })
    return out


def balance(records: list[dict[str, Any]], positive_fraction: float, max_records: int | None,
            rng: random.Random) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Subsample the majority class to `positive_fraction`, then cap the total at `max_records`
    (keeping the fraction); the original order is kept. Returns the kept records and what was dropped."""
    pos = [i for i, r in enumerate(records) if r["label"] == 1]
    neg = [i for i, r in enumerate(records) if r["label"] == 0]
    f = positive_fraction
    n_pos, n_neg = len(pos), len(neg)
    if n_pos and n_neg:
        if n_pos / (n_pos + n_neg) > f:
            n_pos = min(n_pos, max(1, round(f / (1 - f) * n_neg)))
        else:
            n_neg = min(n_neg, max(1, round((1 - f) / f * n_pos)))
    if max_records is not None and n_pos + n_neg > max_records:
        scale = max_records / (n_pos + n_neg)
        n_pos, n_neg = round(n_pos * scale), max_records - round(n_pos * scale)
    keep = set(rng.sample(pos, n_pos)) | set(rng.sample(neg, n_neg))
    dropped = {"dropped_positives": len(pos) - n_pos, "dropped_negatives": len(neg) - n_neg}
    return [r for i, r in enumerate(records) if i in keep], dropped
