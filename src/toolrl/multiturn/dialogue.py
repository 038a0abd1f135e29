"""How a multi-turn conversation reads to the model: the same ToolRL markup as single-turn data.

The conversation is a chat that grows: the opening is `formats.prompt_messages` (system prompt with
the case's tools, then the first user turn as ToolRL's history message); each model message is an
assistant message; what follows it is one user message in the history's own markup, `<obs>` lines
for tool results and `<user>` for the next request. So a single-turn model reads a multi-turn
conversation in the layout it was trained on, and the token stream only ever grows, which lets the
loss mask the environment's tokens out of one sequence.
"""

from __future__ import annotations

from typing import Any

from toolrl.formats import CALL_CLOSE, CALL_OPEN, prompt_messages, render_tool
from toolrl.multiturn.cases import MultiTurnCase

PARSE_HELP = (f"Write each call as one JSON object per line between {CALL_OPEN} and {CALL_CLOSE}: "
              '{"name": "...", "parameters": {...}}.')


def tools_of(functions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from toolrl.evaluation.bfcl import to_tool

    return [to_tool(f) for f in functions]


def opening(case: MultiTurnCase) -> list[dict[str, str]]:
    """System prompt with the tools available from the start, and the first user turn."""
    return prompt_messages(tools_of(case.functions), [{"role": "user", "content": case.user_text(0)}])


def observations(results: list[str]) -> str:
    return "\n".join(f"<obs> {r.strip()} </obs>" for r in results)


def parse_failure(error: str) -> str:
    """The tool message for a model message whose call block could not be read."""
    return f"Error: your tool call could not be parsed ({error}). {PARSE_HELP}"


def next_request(case: MultiTurnCase, turn: int, added: list[dict[str, Any]]) -> str:
    """Turn `turn`'s user message; functions that arrive this turn are listed first (miss_func)."""
    text = f"<user> {case.user_text(turn)} </user>"
    if added:
        listed = "\n".join(render_tool(i, t) for i, t in enumerate(tools_of(added), start=1))
        text = f"New tools you can use from now on:\n{listed}\n{text}"
    return text


def feedback(text: str) -> dict[str, str]:
    """What the environment or the next user turn says to the model, as the next chat message."""
    return {"role": "user", "content": text}
