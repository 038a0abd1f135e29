"""The ToolRL output format, in one place the whole project shares.

A model answers a turn with

    <think> reasoning </think>
    <tool_call>
    {"name": "tool", "parameters": {"arg": "value"}}
    {"name": "other", "parameters": {}}
    </tool_call>
    <response> final answer </response>

where `<tool_call>` and `<response>` are each optional (at least one is expected). This module
renders the system prompt that lists the tools, the dialogue history, and a target completion, and
parses a completion back into its parts. `assistant_text` reads a completion given as chat
messages and `call_block_span` cuts out the `<tool_call>` block, for everyone: `parse` (data,
evaluation, statistics), the TRM's call spans, and the reward, which asks for the reference scorer's
cut (`reference=True`) and keeps its own reference-exact scoring on top of it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
RESP_OPEN, RESP_CLOSE = "<response>", "</response>"

SYSTEM_HEAD = (
    "You are a helpful multi-turn dialogue assistant capable of leveraging tool calls to solve user "
    "tasks and provide structured chat responses."
)

SYSTEM_TAIL = """**Steps for Each Turn**
1. **Think:** Recall relevant context and analyze the current user goal.
2. **Decide on Tool Usage:** If a tool is needed, specify the tool and its parameters.
3. **Respond Appropriately:** If a response is needed, generate one while maintaining consistency across user queries.

**Output Format**
```plaintext
<think> Your thoughts and reasoning </think>
<tool_call>
{"name": "Tool name", "parameters": {"Parameter name": "Parameter content", "... ...": "... ..."}}
{"name": "... ...", "parameters": {"... ...": "... ...", "... ...": "... ..."}}
...
</tool_call>
<response> AI's final response </response>
```

**Important Notes**
1. You must always include the `<think>` field to outline your reasoning. Provide at least one of `<tool_call>` or `<response>`. Decide whether to use `<tool_call>` (possibly multiple times), `<response>`, or both.
2. You can invoke multiple tool calls simultaneously in the `<tool_call>` fields. Each tool call should be a JSON object with a "name" field and an "parameters" field containing a dictionary of parameters. If no parameters are needed, leave the "parameters" field an empty dictionary.
3. Refer to the previous dialogue records in the history, including the user's queries, previous `<tool_call>`, `<response>`, and any tool feedback noted as `<obs>` (if exists)."""

HISTORY_HEAD = "**Dialogue Records History**"


@dataclass(frozen=True)
class ToolCall:
    """One call: a tool name and its arguments (ToolRL writes them under "parameters")."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "parameters": self.arguments}, ensure_ascii=False)


@dataclass
class Parsed:
    """A completion split into its parts. `error` names the first thing that could not be parsed."""

    thought: str | None = None
    calls: list[ToolCall] = field(default_factory=list)
    response: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# ---------------------------------------------------------------- rendering


def render_tool(index: int, tool: dict[str, Any]) -> str:
    """One tool as ToolRL lists it: number, name, description and the JSON of its parameters."""
    params = tool.get("parameters") or {}
    props = params.get("properties", params) if isinstance(params, dict) else {}
    required = params.get("required") if isinstance(params, dict) else None
    shown = dict(props)
    text = (
        f"{index}. Name: {tool['name']}\n"
        f"Description: {tool.get('description', '')}\n"
        f"Parameters: {json.dumps(shown, ensure_ascii=False)}"
    )
    if required:
        text += f"\nRequired: {json.dumps(list(required), ensure_ascii=False)}"
    return text


def listed_tool(text: str, name: str) -> str | None:
    """The last entry `render_tool` wrote for the tool `name` in rendered text, or None when the text
    lists no tool of that name. Readers that keep only a window of a long prompt use it to keep the
    called tool's description (`toolrl.trm.steps.encode_step`)."""
    entry = re.compile(rf"^\d+\. Name: {re.escape(name)}\nDescription: .*?\nParameters: [^\n]*(?:\nRequired: [^\n]*)?",
                       re.MULTILINE | re.DOTALL)
    listings = list(entry.finditer(text))  # the last wins: a later turn may list tools again
    return listings[-1].group(0) if listings else None


def system_prompt(tools: list[dict[str, Any]]) -> str:
    """The system prompt listing `tools` (JSON-schema style dicts with name, description, parameters)."""
    listed = "\n".join(render_tool(i, t) for i, t in enumerate(tools, start=1))
    return (
        f"{SYSTEM_HEAD}\n\n**Available Tools**\nIn your response, you can use the following tools:\n"
        f"{listed}\n\n{SYSTEM_TAIL}"
    )


def render_history(turns: list[dict[str, str]]) -> str:
    """Dialogue so far as ToolRL's user message: `<user>`, `<tool_call>`, `<obs>`, `<response>` lines.

    `turns` are chat messages: role `user`, `assistant` (content already in the output format),
    or `tool` (an observation).
    """
    lines = [HISTORY_HEAD]
    for turn in turns:
        role, content = turn["role"], str(turn["content"]).strip()
        if role == "user":
            lines.append(f"<user> {content} </user>")
        elif role == "tool":
            lines.append(f"<obs> {content} </obs>")
        elif role == "assistant":
            lines.append(content)
        else:
            raise ValueError(f"unknown dialogue role {role!r}: use user, assistant or tool")
    return "\n".join(lines)


def render_completion(thought: str | None, calls: list[ToolCall], response: str | None) -> str:
    """A target completion in the exact layout the format reward asks for."""
    parts = [f"{THINK_OPEN} {(thought or '').strip()} {THINK_CLOSE}"]
    if calls:
        parts.append(CALL_OPEN + "\n" + "\n".join(c.to_json() for c in calls) + "\n" + CALL_CLOSE)
    if response is not None:
        parts.append(f"{RESP_OPEN} {response.strip()} {RESP_CLOSE}")
    return "\n".join(parts)


# ---------------------------------------------------------------- parsing


def assistant_text(completion: Any) -> str:
    """The assistant text of a completion: a string as it is, or chat messages (TRL's conversational
    format, the curated record's `completion` column; one message dict also works).

    Every consumer reads a completion through this one function, so the reward and the statistics
    logged beside it always look at the same text. With several messages (a multi-turn rollout:
    assistant, tool, assistant, ...) the contents of all assistant messages are joined in order with
    a newline: everything the policy wrote is judged, so a bad later turn cannot hide behind a good
    first one (the reference reads `completion[0]["content"]` only) nor a good last turn hide the calls
    made before it. Tool and other non-assistant messages are not the policy's text and are left out;
    a message without a role counts as the assistant's. With a single message, as in every
    single-turn completion, this is exactly that message's content, the reference's reading.
    A content that is not a string (None beside structured `tool_calls`) adds nothing.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, list) and all(isinstance(m, dict) for m in completion):
        parts = [m.get("content") for m in completion if m.get("role", "assistant") == "assistant"]
        return "\n".join(p for p in parts if isinstance(p, str))
    raise TypeError(
        f"completion must be a string or a list of chat messages, got {type(completion).__name__}"
    )


def call_block_span(text: str, need_close: bool = True, reference: bool = False) -> tuple[int, int] | None:
    """Where the body of the first `<tool_call>` block lies: `(start, end)` such that `text[start:end]`
    is the text between the tags, unstripped. None when `text` has no `<tool_call>`. The one place
    that cuts out a call block; the reward, `parse` and the TRM's call spans all use it.

    The project's reading (`parse`, the TRM): the body runs to the first `</tool_call>` after the
    opening tag. A block left open is None when `need_close`, else it runs to the end of the text (a
    truncated generation, whose calls the TRM still scores).

    The reward's reading (`reference=True`) reproduces the reference scorer's split-based cut, to the
    bit: the text after the first `<tool_call>` is cut at the next `<tool_call>`, then at the first
    `</tool_call>` before that. With `need_close`, a `</tool_call>` anywhere in the text will do, even
    one before the opening tag (the block then runs to the next `<tool_call>` or the end). Plain
    `str.find`s, no regular expression: the reward calls this on every score.
    """
    start = text.find(CALL_OPEN)
    if start < 0:
        return None
    start += len(CALL_OPEN)
    if reference:
        end = text.find(CALL_OPEN, start)
        if end < 0:
            end = len(text)
        close = text.find(CALL_CLOSE, start, end)
        if close < 0:
            if need_close and CALL_CLOSE not in text:
                return None
            close = end
        return start, close
    close = text.find(CALL_CLOSE, start)
    if close < 0:
        return None if need_close else (start, len(text))
    return start, close


def _between(text: str, open_tag: str, close_tag: str) -> str | None:
    start = text.find(open_tag)
    if start < 0:
        return None
    end = text.find(close_tag, start + len(open_tag))
    if end < 0:
        return None
    return text[start + len(open_tag) : end]


# Deeper arguments than any tool schema asks for; far deeper ones (~600 levels) would overflow the stack of
# whatever walks them later (json, dataclasses.asdict, deepcopy).
MAX_ARGUMENT_DEPTH = 32


def _not_a_number(constant: str) -> Any:
    raise ValueError(f"tool call is not valid JSON: {constant} is not a JSON number")


def _depth(value: Any) -> int:
    """Nesting depth of lists and objects (0 for a scalar), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_call(line: str) -> ToolCall:
    """One JSON line `{"name": ..., "parameters": {...}}` (also accepts "arguments"). Raises ValueError."""
    try:
        obj = json.loads(line, parse_constant=_not_a_number)
    except json.JSONDecodeError as exc:
        raise ValueError(f"tool call is not valid JSON: {exc.msg}") from None
    except RecursionError:
        raise ValueError(f"tool call nests deeper than {MAX_ARGUMENT_DEPTH} levels") from None
    if _depth(obj) > MAX_ARGUMENT_DEPTH + 1:
        raise ValueError(f"tool call nests deeper than {MAX_ARGUMENT_DEPTH} levels")
    if not isinstance(obj, dict):
        raise ValueError("tool call is not a JSON object")
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError('tool call has no "name" string')
    args = obj.get("parameters", obj.get("arguments", {}))
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ValueError('tool call "parameters" is not an object')
    return ToolCall(name=name, arguments=args)


def parse(text: str) -> Parsed:
    """Split a completion into thought, calls and response; never raises.

    Lenient where a reader would be (surrounding whitespace, blank lines in the call block), strict
    where meaning is at stake: every non-blank line of the call block must be one JSON call, otherwise
    `error` says which line failed and `calls` holds only those that parsed before it.
    """
    out = Parsed()
    if not isinstance(text, str):
        out.error = "completion is not text"
        return out
    text = text.strip()
    think = _between(text, THINK_OPEN, THINK_CLOSE)
    out.thought = think.strip() if think is not None else None
    resp = _between(text, RESP_OPEN, RESP_CLOSE)
    out.response = resp.strip() if resp is not None else None
    if CALL_OPEN in text:
        span = call_block_span(text)
        if span is None:
            out.error = "unclosed <tool_call> block"
            return out
        for n, line in enumerate(text[span[0] : span[1]].strip().split("\n"), start=1):
            if not line.strip():
                continue
            try:
                out.calls.append(parse_call(line.strip()))
            except ValueError as exc:
                out.error = f"call line {n}: {exc}"
                return out
    return out


def ground_truth(thought: str | None, calls: list[ToolCall], response: str | None) -> str:
    """The ground-truth string the reward reads: same layout as a target completion."""
    return render_completion(thought, calls, response)


def prompt_messages(tools: list[dict[str, Any]], conversation: list[dict[str, str]]) -> list[dict[str, str]]:
    """The chat prompt of one example: a system message listing the tools, then the dialogue so far
    rendered as ToolRL's single user message. Used by training, TRM data and evaluation alike."""
    return [
        {"role": "system", "content": system_prompt(tools)},
        {"role": "user", "content": render_history(conversation)},
    ]


def messages_problem(value: Any, field: str) -> str | None:
    """Why `value` is not a non-empty list of chat messages (string `role` and `content`), or None.
    The one check of chat messages read from a file: curated records, training views, trajectories."""
    if not isinstance(value, list) or not value:
        return f"{field!r} must be a non-empty list of chat messages"
    for msg in value:
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str) or not isinstance(msg.get("content"), str):
            return f"{field!r} holds a message without string 'role' and 'content'"
    return None
