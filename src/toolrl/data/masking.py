"""Hammer's function masking (arXiv 2410.04587), applicable to any source.

Tool names (and optionally parameter names) are replaced by random strings, consistently in the tool
list, the target calls, the calls of earlier turns and the `name` fields of tool results, so a model
must pick tools by their descriptions rather than by their names. The strings are drawn from a
generator seeded by the example id: the same params mask the same way every run. The mapping is kept
in the provenance (`masked_names`) so an example can be traced back.
"""

from __future__ import annotations

import json
import random
import string
from typing import Any

from toolrl import formats
from toolrl.data.schema import Call, CanonicalExample, Message, Tool

ALPHABET = string.ascii_letters + string.digits + "_"


def _random_name(rng: random.Random, taken: set[str]) -> str:
    while True:
        name = rng.choice(string.ascii_letters) + "".join(rng.choice(ALPHABET) for _ in range(rng.randint(4, 13)))
        if name not in taken:
            taken.add(name)
            return name


def _rename_results(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: (names.get(v, v) if k == "name" and isinstance(v, str) else _rename_results(v, names))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_rename_results(v, names) for v in value]
    return value


def _mask_call(call_name: str, args: dict[str, Any], names: dict[str, str],
               params: dict[str, dict[str, str]]) -> tuple[str, dict[str, Any]]:
    pmap = params.get(call_name, {})
    return names.get(call_name, call_name), {pmap.get(k, k): v for k, v in args.items()}


def _mask_turn(msg: Message, names: dict[str, str], params: dict[str, dict[str, str]]) -> Message:
    if msg.role == "assistant":
        parsed = formats.parse(msg.content)
        if not parsed.ok or not parsed.calls:
            return msg
        calls = [formats.ToolCall(*_mask_call(c.name, c.arguments, names, params)) for c in parsed.calls]
        return Message(role="assistant", content=formats.render_completion(parsed.thought, calls, parsed.response))
    if msg.role == "tool":
        try:
            value = json.loads(msg.content)
        except json.JSONDecodeError:
            return msg
        return Message(role="tool", content=json.dumps(_rename_results(value, names), ensure_ascii=False))
    return msg


def mask(example: CanonicalExample, seed: int, *, tool_names: bool = True,
         param_names: bool = False) -> CanonicalExample:
    """A copy of `example` with tool names and/or parameter names masked."""
    rng = random.Random(f"{seed}:{example.id}")
    taken: set[str] = set()
    names = {t.name: _random_name(rng, taken) if tool_names else t.name for t in example.tools}
    params: dict[str, dict[str, str]] = {}
    tools = []
    for tool in example.tools:
        schema = dict(tool.parameters)
        if param_names:
            ptaken: set[str] = set()
            pmap = {p: _random_name(rng, ptaken) for p in schema.get("properties", {})}
            params[tool.name] = pmap
            schema["properties"] = {pmap[k]: v for k, v in schema.get("properties", {}).items()}
            schema["required"] = [pmap.get(r, r) for r in schema.get("required", [])]
        tools.append(Tool(name=names[tool.name], description=tool.description, parameters=schema))
    calls = [Call(name=n, arguments=a) for n, a in
             (_mask_call(c.name, c.arguments, names, params) for c in example.target.calls)]
    provenance = dict(example.provenance)
    if tool_names:
        provenance["masked_names"] = {v: k for k, v in names.items()}
    if param_names:
        provenance["masked_parameters"] = {names[t]: {v: k for k, v in m.items()} for t, m in params.items()}
    return example.model_copy(update={
        "tools": tools,
        "conversation": [_mask_turn(m, names, params) for m in example.conversation],
        "target": example.target.model_copy(update={"calls": calls}),
        "provenance": provenance,
    })
