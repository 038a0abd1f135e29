"""What one multi-turn conversation did: per user turn, the model's messages, calls and tool results.

A `Trajectory` is the one record the loop writes and everything downstream reads: the rewards, the
TRM's per-call labels, the evaluation (BFCL's multi-turn checker reads `decoded()`), MLflow sample
tables and trajectory files (`to_dict`/`from_dict`, one JSON object per line).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from toolrl.formats import ToolCall
from toolrl.multiturn.environment import call_string

# Why a conversation stopped.
FINISHED = "finished"  # every user turn ended with a message that made no call
STEP_LIMIT = "step_limit"  # a turn reached the model-message limit while still calling
CALL_LIMIT = "call_limit"  # the conversation reached its call limit
LENGTH_LIMIT = "length_limit"  # the token budget ran out
STOPS = (FINISHED, STEP_LIMIT, CALL_LIMIT, LENGTH_LIMIT)


@dataclass
class Step:
    """One model message and what the environment answered.

    `results[i]` answers `calls[i]`; a message whose call block could not be parsed has no calls,
    `error` says why, and `results` holds the one tool message that told the model so. `truncated`:
    the message hit its token limit instead of ending by itself. `refused[i]`: the environment did not
    run `calls[i]` (a function not offered yet, arguments that do not fit, the call limit): BFCL's checker
    must not replay it either. Empty means none refused (records written before the field).
    """

    text: str
    calls: list[ToolCall] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    error: str | None = None
    truncated: bool = False
    refused: list[bool] = field(default_factory=list)

    def executed_calls(self) -> list[ToolCall]:
        """The calls the environment ran, in order."""
        return [c for i, c in enumerate(self.calls) if not (i < len(self.refused) and self.refused[i])]


@dataclass
class Turn:
    """One user turn: the user's message (or BFCL's note on functions added this turn) and the model's steps."""

    user: str
    steps: list[Step] = field(default_factory=list)
    added_functions: list[str] = field(default_factory=list)


@dataclass
class Trajectory:
    case_id: str
    category: str
    turns: list[Turn] = field(default_factory=list)
    stop: str = FINISHED

    def decoded(self) -> list[list[list[str]]]:
        """Per turn, per step, the calls as BFCL strings: the input of BFCL's multi-turn checker.

        A step without calls is left out, as BFCL's own inference loop leaves out a reply that
        decodes to no call; so are the calls the environment refused (`Step.refused`): the checker
        replays what the model's environment ran. A turn the conversation never reached is an empty list.
        """
        ran = [[step.executed_calls() for step in turn.steps] for turn in self.turns]
        return [[[call_string(c) for c in calls] for calls in turn if calls] for turn in ran]

    @property
    def calls(self) -> list[ToolCall]:
        return [c for turn in self.turns for step in turn.steps for c in step.calls]

    @property
    def turns_completed(self) -> int:
        """User turns whose last model message made no call (the model answered and handed back)."""
        return sum(1 for turn in self.turns if turn.steps and not turn.steps[-1].calls
                   and turn.steps[-1].error is None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        try:
            turns = [Turn(user=t["user"], added_functions=list(t.get("added_functions", [])),
                          steps=[Step(text=s["text"], error=s.get("error"), results=list(s.get("results", [])),
                                      truncated=bool(s.get("truncated", False)),
                                      refused=[bool(r) for r in s.get("refused", [])],
                                      calls=[ToolCall(c["name"], dict(c.get("arguments", {})))
                                             for c in s.get("calls", [])])
                                 for s in t.get("steps", [])])
                     for t in data.get("turns", [])]
            stop = data.get("stop", FINISHED)
            if stop not in STOPS:
                raise ValueError(f"stop {stop!r} is not one of {', '.join(STOPS)}")
            return cls(case_id=data["case_id"], category=data["category"], turns=turns, stop=stop)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a trajectory record ({type(exc).__name__}: {exc}): expected "
                             "{case_id, category, turns: [{user, steps: [{text, calls, results}]}], stop}") from None


def summary(trajectories: Sequence[Trajectory]) -> dict[str, float]:
    """Mean calls, model messages and completed user turns per trajectory, the share of messages the
    environment could not read (`parse_error_share`), and the share that stopped for each reason:
    what GRPO logs per step and the evaluation report shows per model."""
    n = max(1, len(trajectories))
    steps = [step for t in trajectories for turn in t.turns for step in turn.steps]
    stats = {"calls_per_trajectory": sum(len(t.calls) for t in trajectories) / n,
             "messages_per_trajectory": len(steps) / n,
             "turns_completed": sum(t.turns_completed for t in trajectories) / n,
             "parse_error_share": sum(step.error is not None for step in steps) / max(1, len(steps))}
    for reason in STOPS:
        stats[f"stop/{reason}"] = sum(t.stop == reason for t in trajectories) / n
    return stats
