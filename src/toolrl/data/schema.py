"""The canonical example every source is converted to, and the two training views rendered from it.

An example is one assistant turn to learn: the tools on offer (JSON-schema style), the dialogue so
far, the target (thought, calls, response) and where it came from. `render_views` adds what the
trainers read: `prompt` (chat messages listing the tools), `completion` (SFT) and `ground_truth`
(the reward's input), all through `toolrl.formats`, so every stage shares one format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from toolrl import formats
from toolrl.config import ConfigError

# ToolRL's own placeholder thoughts (its ground truths and dialogue histories use them), for sources
# that carry no reasoning: the completion keeps the `<think>` the format reward asks for.
THOUGHT_CALL = "I should use the appropriate tool with proper parameters to respond to the user's need."
THOUGHT_RESPONSE = "I should directly respond to the user's need."


class DataError(ConfigError):
    """A source that cannot be read at all (wrong location, unreadable file, offline hub id): the
    user fixes it in params.yaml, so it is reported like a ConfigError (one line, exit 2)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Tool(_Model):
    name: str = Field(min_length=1)
    description: str = ""
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}, "required": []}
    )


class Message(_Model):
    role: Literal["user", "assistant", "tool"]
    content: str


class Call(_Model):
    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)


class Target(_Model):
    thought: str | None = None
    calls: list[Call] = Field(default_factory=list)
    response: str | None = None


class CanonicalExample(_Model):
    id: str
    source: str
    tools: list[Tool]
    conversation: list[Message]
    target: Target
    provenance: dict[str, Any] = Field(default_factory=dict)


@dataclass
class Rejected:
    """An upstream record (or one turn of it) that becomes a quarantine entry instead of an example."""

    reason: str
    detail: str
    source: str
    provenance: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    record: Any = None  # the upstream record, kept so the entry can be inspected and fixed

    def entry(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "reason": self.reason,
            "detail": self.detail,
            "provenance": self.provenance,
            "record": self.record,
        }


Converted = CanonicalExample | Rejected


# ---------------------------------------------------------------- rendering

_TAGS = re.compile(r"</?(think|tool_call|response|obs|user)>")


def defuse_tags(text: str | None) -> str | None:
    """Format tags quoted in prose (`a <tool_call> fits`) lose their angle brackets, so the rendered
    completion parses back to the same target (ToolRL's distilled thoughts do quote them)."""
    return _TAGS.sub(lambda m: m.group(0).strip("<>").replace("/", ""), text) if text else text


def clean_target(example: CanonicalExample) -> CanonicalExample:
    t = example.target
    thought, response = defuse_tags(t.thought), defuse_tags(t.response)
    if thought == t.thought and response == t.response:
        return example
    return example.model_copy(update={"target": t.model_copy(update={"thought": thought, "response": response})})



def to_calls(calls: list[Call]) -> list[formats.ToolCall]:
    return [formats.ToolCall(name=c.name, arguments=c.arguments) for c in calls]


def _thought(target: Target) -> str:
    return target.thought or (THOUGHT_CALL if target.calls else THOUGHT_RESPONSE)


def completion_text(target: Target) -> str:
    return formats.render_completion(_thought(target), to_calls(target.calls), target.response)


def history_turn(calls: list[Call], response: str | None, thought: str | None = None) -> Message:
    """A past assistant turn, rendered in the output format as the dialogue history shows it."""
    return Message(role="assistant", content=completion_text(Target(thought=thought, calls=calls,
                                                                    response=response)))


def prompt_of(example: CanonicalExample) -> list[dict[str, str]]:
    return formats.prompt_messages(
        [t.model_dump() for t in example.tools], [m.model_dump() for m in example.conversation]
    )


def render_views(example: CanonicalExample) -> dict[str, Any]:
    """The curated record: the example plus its SFT view (prompt + completion) and RL view (prompt +
    ground truth). A target without a thought gets ToolRL's placeholder in both views."""
    target = example.target
    record = example.model_dump(mode="json")
    record["prompt"] = prompt_of(example)
    record["completion"] = [{"role": "assistant", "content": completion_text(target)}]
    record["ground_truth"] = formats.ground_truth(_thought(target), to_calls(target.calls), target.response)
    return record
