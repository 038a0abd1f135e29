"""Rule labels for tool calls: label = necessity x quality, checked against the ground truth.

Each call of a completion is aligned, in order, with at most one ground-truth call of the same name
(an exactly matching one first, else the first unused one of that name):

- necessity = 1 when the call aligns with a ground-truth call and is not a repeat (an identical call
  earlier in the same completion, unless the ground truth itself asks for it twice);
- quality = 1 when the tool exists among the example's tools and the arguments match the aligned
  ground-truth call: the same argument names, each value equal under the parameter's declared type
  (`toolrl.rewards.schema.values_equal`: `"1"` equals `1` for an integer). A call that aligns with
  nothing gets quality = it is a valid call of a listed tool (required arguments present, no
  argument the schema does not list): useful in the data card, though its label is 0 either way.

The LLM judge (`toolrl.trm.judge`) gives the same two factors through an OpenAI-compatible endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from toolrl import formats
from toolrl.rewards.schema import tool_properties, values_equal
from toolrl.trm.calls import CallSpan


@dataclass(frozen=True)
class Verdict:
    necessity: int
    quality: int
    reason: str

    @property
    def label(self) -> int:
        return self.necessity * self.quality


def ground_truth_calls(record: dict[str, Any]) -> list[formats.ToolCall]:
    """The reference calls of a curated record (from its `ground_truth` string, the RL view)."""
    gt = record.get("ground_truth")
    if not isinstance(gt, str):
        raise ValueError(f"record {record.get('id')!r} has no ground_truth string: re-run `toolrl data curate`")
    parsed = formats.parse(gt)
    if not parsed.ok:
        raise ValueError(f"record {record.get('id')!r}: ground_truth does not parse ({parsed.error})")
    return parsed.calls


def arguments_match(gt: formats.ToolCall, call: formats.ToolCall, props: dict[str, dict[str, Any]]) -> bool:
    if set(gt.arguments) != set(call.arguments):
        return False
    schema = props.get(gt.name, {})
    return all(values_equal(v, call.arguments[k], schema.get(k)) for k, v in gt.arguments.items())


def schema_valid(call: formats.ToolCall, tools: list[dict[str, Any]]) -> bool:
    """The call names a listed tool, gives its required arguments and nothing the schema does not list."""
    tool = next((t for t in tools if t.get("name") == call.name), None)
    if tool is None:
        return False
    params = tool.get("parameters") or {}
    props = params.get("properties", {}) if isinstance(params, dict) else {}
    required = params.get("required", []) if isinstance(params, dict) else []
    return set(required) <= set(call.arguments) and set(call.arguments) <= set(props)


def rule_labels(spans: list[CallSpan], gt_calls: list[formats.ToolCall],
                tools: list[dict[str, Any]]) -> list[Verdict]:
    """One verdict per call of a completion, in order.

    Exact matches are aligned first (in call order), so a wrong call before a right one does not
    take the right one's reference call away; the calls left over then align, in order, with a free
    reference call of the same name.
    """
    props = tool_properties(tools)
    exact: dict[int, int] = {}  # call index -> reference index
    for span in spans:
        if span.call is not None:
            j = next((j for j, g in enumerate(gt_calls) if j not in exact.values() and g.name == span.call.name
                      and arguments_match(g, span.call, props)), None)
            if j is not None:
                exact[span.index] = j
    used = set(exact.values())
    verdicts: list[Verdict] = []
    for k, span in enumerate(spans):
        call = span.call
        if call is None:
            verdicts.append(Verdict(0, 0, f"malformed: {span.error}"))
            continue
        known = call.name in props
        if span.index in exact:
            verdicts.append(Verdict(1, 1, "ok") if known else Verdict(1, 0, "unknown_tool"))
            continue
        if any(s.call == call for s in spans[:k]):
            verdicts.append(Verdict(0, int(schema_valid(call, tools)), "repeat"))
            continue
        j = next((j for j, g in enumerate(gt_calls) if j not in used and g.name == call.name), None)
        if j is not None:
            used.add(j)
            verdicts.append(Verdict(1, 0, "wrong_arguments" if known else "unknown_tool"))
        elif not known:
            verdicts.append(Verdict(0, 0, "unknown_tool"))
        else:
            verdicts.append(Verdict(0, int(schema_valid(call, tools)), "not_needed"))
    return verdicts
