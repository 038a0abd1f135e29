"""A completion's tool calls with their character spans.

The TRM scores each call of a completion separately, so we need to know where each call starts and
ends in the completion text. Spans follow `toolrl.formats.parse`: the first `<tool_call>` block
(`formats.call_block_span`), one call per non-blank line. Unlike `parse`, a line that is not a valid call is kept (with
`call=None` and the reason): a malformed call is still a step the policy took, and a bad one. A
block left open (a truncated generation) runs to the end of the text. `call_token_spans` maps the
spans onto the completion's tokens (GRPO+TRM puts each call's advantage on its tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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


class _PrefixLengths:
    """len(decode(ids[:k])) on demand, cached: which characters of the decoded text token k produced."""

    def __init__(self, tokenizer: Any, ids: list[int]):
        self.tokenizer, self.ids, self.cache = tokenizer, ids, {0: 0}

    def __call__(self, k: int) -> int:
        if k not in self.cache:
            self.cache[k] = len(self.tokenizer.decode(self.ids[:k], skip_special_tokens=True))
        return self.cache[k]

    def covering(self, char: int) -> int:
        """The first token whose decoded prefix reaches past `char` (binary search)."""
        lo, hi = 0, len(self.ids) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self(mid + 1) > char:
                hi = mid
            else:
                lo = mid + 1
        return lo


def call_token_spans(tokenizer: Any, ids: list[int], spans: Sequence[CallSpan]) -> list[tuple[int, int]]:
    """[start, end) token ranges of each call, non-overlapping (a token shared by two calls goes to
    the first); `ids` are the completion's tokens, `spans` the calls of their decoded text."""
    if not ids:
        return [(0, 0) for _ in spans]
    lengths = _PrefixLengths(tokenizer, ids)
    out: list[tuple[int, int]] = []
    floor = 0
    for span in spans:
        start = max(lengths.covering(span.start), floor)
        end = max(lengths.covering(span.end - 1) + 1, start)
        out.append((start, end))
        floor = end
    return out
