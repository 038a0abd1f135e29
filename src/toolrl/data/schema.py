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


# ---------------------------------------------------------------- multi-turn records
#
# A multi-turn record is a whole conversation in an executable environment, not one assistant turn,
# so it has its own two shapes (written by the bfcl_multi_turn source under `multi_turn/`):
#   RL:  {id, case_id, category, scenario, prompt, ground_truth_calls}  (the rollout rebuilds the case)
#   SFT: {id, case_id, category, scenario, messages, trajectory}        (the ground truth played out)


def _check_case_fields(record: Any) -> str | None:
    from toolrl.multiturn.cases import CATEGORIES, scenario_of

    if not isinstance(record, dict):
        return "not a JSON object"
    for key in ("id", "case_id", "category", "scenario"):
        if key not in record:
            return f"field {key!r} missing"
    if record["category"] not in CATEGORIES:
        return f"category {record['category']!r} is not a BFCL multi-turn category"
    try:
        scenario = scenario_of(str(record["case_id"]))
    except ValueError as exc:
        return str(exc)
    if scenario != record["scenario"] or not str(record["case_id"]).startswith(record["category"] + "_"):
        return f"case_id {record['case_id']!r} does not match category/scenario"
    return None


def check_multi_turn_rl(record: Any) -> str | None:
    """Why `record` is not a multi-turn RL record, or None."""
    problem = _check_case_fields(record) or formats.messages_problem(record.get("prompt"), "prompt")
    if problem:
        return problem
    if [m["role"] for m in record["prompt"]] != ["system", "user"]:
        return "'prompt' must be the system message and the first user turn"
    calls = record.get("ground_truth_calls")
    if not isinstance(calls, list) or not all(isinstance(t, list) and all(isinstance(c, str) for c in t)
                                              for t in calls):
        return "'ground_truth_calls' must be a list (per turn) of lists of call strings"
    return None


def check_multi_turn_sft(record: Any) -> str | None:
    """Why `record` is not a multi-turn SFT trajectory, or None: the messages must be the
    trajectory's steps in order, each assistant message in the output format."""
    from toolrl.multiturn.trajectory import Trajectory

    problem = _check_case_fields(record) or formats.messages_problem(record.get("messages"), "messages")
    if problem:
        return problem
    try:
        trajectory = Trajectory.from_dict(record.get("trajectory"))
    except (ValueError, AttributeError) as exc:
        return f"'trajectory': {exc}"
    roles = [m["role"] for m in record["messages"]]
    if roles[:2] != ["system", "user"] or roles[-1] != "assistant" or any(
            a == b for a, b in zip(roles[1:], roles[2:], strict=False)):
        return "'messages' must be system, user, then alternate assistant / user, ending with assistant"
    said = [m["content"] for m in record["messages"] if m["role"] == "assistant"]
    steps = [s for turn in trajectory.turns for s in turn.steps]
    if said != [s.text for s in steps]:
        return "the assistant messages are not the trajectory's steps"
    for step in steps:
        parsed = formats.parse(step.text)
        if not parsed.ok or [(c.name, c.arguments) for c in parsed.calls] != [(c.name, c.arguments)
                                                                              for c in step.calls]:
            return f"a step does not parse back to its calls ({parsed.error or 'calls differ'})"
    return None
