"""A completion's tool calls with their character spans.

The TRM scores each call of a completion separately, so we need to know where each call starts and
ends in the completion text. Spans follow `toolrl.formats.parse`: the first `<tool_call>` block
(`formats.call_block_span`), one call per non-blank line. Unlike `parse`, a line that is not a valid call is kept (with
`call=None` and the reason): a malformed call is still a step the policy took, and a bad one. A
block left open (a truncated generation) runs to the end of the text.
"""

from __future__ import annotations

from dataclasses import dataclass

from toolrl import formats


@dataclass(frozen=True)
class CallSpan:
    """Call number `index` of a completion: `text == completion[start:end]` (the stripped line)."""

    index: int
    start: int
    end: int
    text: str
    call: formats.ToolCall | None  # None: the line is not a valid call (see `error`)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.call is not None


def call_spans(completion: str) -> list[CallSpan]:
    """Every call line of the first `<tool_call>` block of `completion`, in order."""
    if not isinstance(completion, str):
        raise TypeError(f"completion must be a string, got {type(completion).__name__}")
    span = formats.call_block_span(completion, need_close=False)
    if span is None:
        return []
    body_start, body_end = span
    spans: list[CallSpan] = []
    pos = body_start
    for line in completion[body_start:body_end].split("\n"):
        stripped = line.strip()
        if stripped:
            start = pos + (len(line) - len(line.lstrip()))
            end = start + len(stripped)
            try:
                call, error = formats.parse_call(stripped), None
            except ValueError as exc:
                call, error = None, str(exc)
            spans.append(CallSpan(len(spans), start, end, stripped, call, error))
        pos += len(line) + 1
    return spans
