"""Reading the two inputs of the reward: the ground truth (trusted, parsed once and cached) and the
predicted `<tool_call>` block of a completion (untrusted, parsed on every call, never raises).

The tags and the cut of the block come from `toolrl.formats`, the project's one definition of the
output format; the reward asks for the reference scorer's cut (`call_block_span(reference=True)`),
because rewards must match it exactly: the block is the text after the first `<tool_call>`, cut at
the next `<tool_call>` and then at the first `</tool_call>`. Each line must be one JSON value (blank
lines inside are errors), read here rather than by `formats.parse_call`, again as the reference reads
them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from toolrl.formats import CALL_OPEN, RESP_OPEN, call_block_span

# json.loads minus its Python layers (loads -> decode -> raw_decode): the C scanner plus the same
# check (JSON whitespace only around the value), in `parse_block`. Predicted lines are parsed
# on every score, and these layers were a sixth of the scoring time. Tested against json.loads in
# tests/test_rewards_fuzz.py.
_SCAN = json.JSONDecoder().scan_once
_JSON_WS = " \t\n\r"


class GroundTruthError(ValueError):
    """A ground truth the reward cannot use; the message says what is wrong with it."""


@dataclass(frozen=True, slots=True)
class GtCall:
    name: str
    params: dict[str, Any]
    keys: list[str]
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class GroundTruth:
    # Which structure the format reward asks for: "call", "response", "both" or "none".
    kind: str
    has_call: bool
    # The parsed JSON objects, kept as a list: the exact-match check compares it with `==`.
    raw_calls: list[dict[str, Any]]
    # The stripped call block: a predicted block with the same text parses to calls that compare
    # equal. (Even with NaN: json returns one shared NaN object, and container == treats identical
    # objects as equal, as the reference's exact-match check does.)
    block: str
    calls: tuple[GtCall, ...]
    names: list[str]
    # Maximum raw correctness score: 1 (names) + per call 1 (keys) + one per parameter value when
    # calls are graded; 1 + one per call when only whole calls count. Summed in the reference's
    # order, so the float result agrees to the bit.
    graded_max: float = 1.0
    exact_max: float = 1.0


def call_block(text: str, need_close: bool = True) -> str | None:
    """The stripped first `<tool_call>` block, cut as the reference cuts it
    (`formats.call_block_span(..., reference=True)`): None without `<tool_call>`, or when `need_close`
    and `</tool_call>` is nowhere in the text."""
    span = call_block_span(text, need_close, True)
    return None if span is None else text[span[0] : span[1]].strip()


def parse_block(block: str) -> list[Any] | None:
    """The JSON value of each line of a stripped block (as json.loads reads it); None if a line is not
    JSON. Never raises."""
    out = []
    scan, ws = _SCAN, _JSON_WS
    try:
        for line in block.split("\n"):
            # (json.loads rejects a leading BOM; so does the scanner: it starts no JSON value)
            obj, stop = scan(line, len(line) - len(line.lstrip(ws)))
            if len(line.rstrip(ws)) != stop:
                return None
            out.append(obj)
    except (StopIteration, ValueError, RecursionError):  # no value, int digit limit, nesting too deep
        return None
    return out


def predicted_calls(text: str) -> list[Any] | None:
    """The JSON values on the lines of the completion's call block; None when there is no complete
    block or a line is not JSON (both give the correctness minimum). Never raises."""
    block = call_block(text)
    return None if block is None else parse_block(block)


def parse_ground_truth(text: str) -> GroundTruth:
    """Parse (once per distinct string) a ground truth; raises GroundTruthError if unusable.

    Every line of its call block must be `{"name": str, "parameters": {...}}`.
    """
    if type(text) is not str:
        raise GroundTruthError(f"ground truth must be a string, got {type(text).__name__}")
    return _parse_ground_truth(text)


@lru_cache(maxsize=65536)
def _parse_ground_truth(text: str) -> GroundTruth:
    has_call, has_resp = CALL_OPEN in text, RESP_OPEN in text
    kind = ("both" if has_resp else "call") if has_call else ("response" if has_resp else "none")
    if not has_call:
        return GroundTruth(kind, False, [], "", (), [])
    block = call_block(text, need_close=False)
    raw_calls, calls = [], []
    for n, line in enumerate(block.split("\n"), start=1):
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise GroundTruthError(
                f"ground truth tool call line {n} is not JSON ({exc}): {line[:80]!r}; each line of its "
                '<tool_call> block must be {"name": ..., "parameters": {...}}'
            ) from None
        if not (isinstance(obj, dict) and isinstance(obj.get("name"), str)
                and isinstance(obj.get("parameters"), dict)):
            raise GroundTruthError(
                f'ground truth tool call line {n} is not {{"name": str, "parameters": object}}: {line[:80]!r}'
            )
        raw_calls.append(obj)
        calls.append(GtCall(obj["name"], obj["parameters"], list(obj["parameters"]), obj))
    graded_max = exact_max = 1.0
    for c in calls:
        graded_max += 1.0 + len(c.params)
        exact_max += 1.0
    return GroundTruth(kind, True, raw_calls, block, tuple(calls), [c.name for c in calls], graded_max, exact_max)
