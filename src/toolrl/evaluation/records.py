"""What the benchmarks hand to the runner (`BenchmarkCase`) and what grading hands back (`Grade`).

Every wrong answer carries one error category from `ERROR_CATEGORIES`, so the report can count what
kind of mistakes a model makes, not only how many.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from toolrl.formats import Parsed

# Error categories shared by the benchmarks, in the order the report lists them.
ERROR_CATEGORIES: dict[str, str] = {
    "unclosed_call": "a <tool_call> block that is never closed",
    "bad_json": "a line of the <tool_call> block is not valid JSON",
    "bad_call": "a call that is JSON but not {\"name\": str, \"parameters\": object}",
    "no_call": "no tool call where one was expected",
    "unexpected_call": "a tool call where none was expected (irrelevance)",
    "extra_call": "more calls than the answer has",
    "missing_call": "fewer calls than the answer has",
    "wrong_name": "a call to a tool other than the expected one",
    "missing_param": "a required (or non-optional) parameter left out",
    "unexpected_param": "a parameter the tool or the answer does not have",
    "wrong_type": "a parameter value of the wrong type",
    "wrong_value": "a parameter value that is not an accepted one",
    "wrong_args": "the right tool with arguments other than the gold ones",
    "no_match": "parallel calls that cannot be matched one to one with the answer",
    "force_terminated": "the conversation stopped at a limit before the last user turn (multi-turn)",
    "empty_turn": "a turn that needed calls got none (multi-turn)",
    "state_mismatch": "the environment's state after a turn differs from the ground truth's (multi-turn)",
    "response_mismatch": "a result the ground truth's calls produced is missing from the model's (multi-turn)",
    "checker_error": "the official checker raised on this output (counted wrong, listed in the warnings)",
}


@dataclass(frozen=True)
class BenchmarkCase:
    """One benchmark case: the chat prompt to generate from and what grading needs."""

    id: str
    benchmark: str
    category: str
    messages: list[dict[str, str]]
    gold: Any = field(compare=False, repr=False)
    # A multi-turn case: what the conversation shows beyond its opening `messages` (later turns, added
    # tools, the environment's initial state), as JSON. Part of the cache key; empty for single-turn.
    conversation: str = field(default="", compare=False, repr=False)


@dataclass
class Grade:
    """The grade of one completion."""

    id: str
    correct: bool
    error: str | None = None  # a key of ERROR_CATEGORIES when not correct
    detail: str = ""  # what exactly was wrong (checker message, parse error)
    checked: bool = False  # the benchmark's official checker was run on it (BFCL), crashed or not

    def __post_init__(self) -> None:
        if not self.correct and self.error not in ERROR_CATEGORIES:
            raise ValueError(f"unknown error category {self.error!r}")


def parse_error_category(parsed: Parsed) -> str | None:
    """The error category of a completion `formats.parse` could not read, or None when it parsed."""
    if parsed.error is None:
        return None
    if "unclosed" in parsed.error:
        return "unclosed_call"
    if "not valid JSON" in parsed.error:
        return "bad_json"
    return "bad_call"
