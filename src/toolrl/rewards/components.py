"""The three reward components, each a pure function of the stripped completion, the parsed ground
truth and the component's range at the current step.

- format (`format_ok`): max when the completion has exactly the structure the ground truth asks for,
  else min;
- correctness: tool calls scored by `matching`, normalised into [min, max]; 0 when the ground truth
  has no tool call; min when the predicted block is missing or malformed;
- length: words inside the last `<think>`, over a target word count, rounded to 0.01, capped at 1,
  mapped into [min, max]; min without a complete think block.

The format rules are the reference's anchored regular expressions (`^<think>.*?</think>\\n...$`,
DOTALL) written as prefix/suffix/find checks: linear time on any input, no backtracking.
"""

from __future__ import annotations

import math
from typing import Any

from toolrl.formats import CALL_CLOSE, CALL_OPEN, RESP_CLOSE, RESP_OPEN, THINK_CLOSE, THINK_OPEN
from toolrl.rewards.matching import Malformed, call_score
from toolrl.rewards.parsing import GroundTruth, call_block, parse_block
from toolrl.rewards.registry import Variant
from toolrl.rewards.schedules import Range

_THINK_TO_RESPONSE = THINK_CLOSE + "\n" + RESP_OPEN  # </think>\n<response>
_THINK_TO_CALL = THINK_CLOSE + "\n" + CALL_OPEN + "\n"  # </think>\n<tool_call>\n
_CALL_END = "\n" + CALL_CLOSE  # \n</tool_call>
_CALL_TO_RESPONSE = "\n" + CALL_CLOSE + "\n" + RESP_OPEN  # \n</tool_call>\n<response>
_T = len(THINK_OPEN)


def format_ok(text: str, kind: str) -> bool:
    """Whether stripped `text` has the layout a ground truth of `kind` asks for:

    response: `<think>..</think>\\n<response>..</response>`, one response tag pair;
    call:     `<think>..</think>\\n<tool_call>\\n..\\n</tool_call>`, one tool_call tag pair;
    both:     `<think>..</think>\\n<tool_call>\\n..\\n</tool_call>\\n<response>..</response>`, one of each;
    none:     `<think>..</think>`.
    The `..` parts may hold anything, tags included.
    """
    if not text.startswith(THINK_OPEN):
        return False
    n = len(text)
    if kind == "call":
        if not text.endswith(_CALL_END) or text.count(CALL_OPEN) != 1 or text.count(CALL_CLOSE) != 1:
            return False
        i = text.find(_THINK_TO_CALL, _T)
        return i >= 0 and i + len(_THINK_TO_CALL) <= n - len(_CALL_END)
    if kind == "response":
        if not text.endswith(RESP_CLOSE) or text.count(RESP_OPEN) != 1 or text.count(RESP_CLOSE) != 1:
            return False
        i = text.find(_THINK_TO_RESPONSE, _T)
        return i >= 0 and i + len(_THINK_TO_RESPONSE) <= n - len(RESP_CLOSE)
    if kind == "both":
        if not text.endswith(RESP_CLOSE) or text.count(RESP_OPEN) != 1 or text.count(RESP_CLOSE) != 1:
            return False
        if text.count(CALL_OPEN) != 1 or text.count(CALL_CLOSE) != 1:
            return False
        i = text.find(_THINK_TO_CALL, _T)
        if i < 0:
            return False
        j = text.find(_CALL_TO_RESPONSE, i + len(_THINK_TO_CALL))
        return j >= 0 and j + len(_CALL_TO_RESPONSE) <= n - len(RESP_CLOSE)
    return text.endswith(THINK_CLOSE) and n >= _T + len(THINK_CLOSE)


def correctness_reward(
    text: str, gt: GroundTruth, rng: Range, variant: Variant, tools: dict[str, Any] | None = None
) -> float:
    """`tools` ({tool name: {param: schema}}) switches on schema-aware values for the variants that
    use them, when it describes a ground-truth tool; the exact-match shortcut (Python ==, under which
    true == 1) then gives way to typed comparison."""
    if not gt.has_call:
        return 0.0
    block = call_block(text)
    if block is None:
        return rng.min
    typed = variant.values == "schema" and bool(tools) and any(g.name in tools for g in gt.calls)
    if not typed and block == gt.block:  # same text, same calls: skip parsing
        return rng.max
    predicted = parse_block(block)
    if predicted is None:
        return rng.min
    try:  # RecursionError: comparing values nested nearly as deep as the interpreter allows
        if not typed and predicted == gt.raw_calls:
            return rng.max
        if variant.all_or_nothing:
            return rng.min
        score, maximum = call_score(gt, predicted, variant, tools if typed else None)
    except (Malformed, RecursionError):
        return rng.min
    return (rng.max - rng.min) * score / maximum + rng.min


# Word counting for ASCII text without creating a string per word (`str.split` did, and that was a
# third of the time of the length variants): map str.split's ASCII whitespace to b" " and every other
# byte to b"x"; the words are the " x" boundaries, plus one if the text starts with a word.
_ASCII_WS = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"  # what str.isspace() accepts below 128
_WORD_MAP = bytes(32 if i in _ASCII_WS else 120 for i in range(256))


def count_words(text: str, cap: int) -> int:
    """len(text.split()), exactly; for non-ASCII text no more than `cap` + 1 (split stops there)."""
    if text.isascii():
        mapped = text.encode("ascii").translate(_WORD_MAP)
        return mapped.count(b" x") + mapped.startswith(b"x")
    return len(text.split(None, cap))


def think_words(text: str, cap: int) -> int:
    """Whitespace-separated words inside the last `<think>` (up to the next `</think>`), counting no
    further than `cap` where that saves work (beyond it the length reward is saturated anyway)."""
    start = text.rfind(THINK_OPEN) + _T
    end = text.find(THINK_CLOSE, start)
    return count_words(text[start : end if end >= 0 else len(text)], cap)


def length_reward(text: str, rng: Range, target_words: float) -> float:
    if THINK_OPEN not in text or THINK_CLOSE not in text:
        return rng.min
    cap = max(int(math.ceil(target_words)), 0) + 1
    ratio = round(think_words(text, cap) / target_words, 2)
    if ratio > 1.0:
        ratio = 1.0
    return ratio * (rng.max - rng.min) + rng.min
