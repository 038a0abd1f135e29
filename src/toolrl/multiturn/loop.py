"""The one conversation loop: model message, execute its calls, feed the results back, next user turn.

GRPO rollouts, TRM-data sampling and evaluation all call `converse`, so what the model sees and what
is recorded cannot drift apart between them.

Batched: every conversation still going steps together. Those awaiting a model message are handed
to the policy in one batch; each message is parsed (`formats.parse`), its calls run in the rollout's
own `BfclEnvironment`, and the answer (tool results, a parse failure, or the next user turn) is
appended as one user message (`dialogue`). A message without a call ends its user turn.

The token record only grows. A rollout's `prompt_ids` are the templated opening with the generation
prompt; its `completion_ids` are everything after: the model's own tokens (`env_mask` 1) and what the
chat template renders between two model messages (`env_mask` 0): the end of the assistant message,
the user message with the feedback, and the next assistant header. Those environment tokens are
found by rendering the conversation with `apply_chat_template` before and after the new messages
and tokenizing the difference, which starts right after a special token (`<|im_end|>`), so it
tokenizes the same alone as inside the whole text. Hence:

- `decode(prompt_ids + completion_ids)` is the chat template's rendering of `messages` (exactly);
- `prompt_ids + completion_ids == tokenize(render(messages))` whenever each model message is the
  tokenizer's own tokenization of its text (a sampled message need not be; the model is then trained
  on the very tokens it generated, which is what the loss needs);
- the model generated every message from exactly the tokens before it in this record.

A template that rewrites earlier messages (Qwen3 drops old `<think>` blocks) breaks the first point;
the loop then stops with an error that says so.

Limits (`Limits`), each with its stop reason in the trajectory:
- `max_new_tokens` per model message: a message cut there is closed by the environment (its
  `<|im_end|>` is an environment token: the model did not choose to stop), marked `truncated`, and
  read like any other (a cut call block is a parse failure the model is told about);
- `max_steps_per_turn` model messages per user turn: a turn still calling at the limit stops the
  conversation (`step_limit`) after that message's calls ran;
- `max_calls` per conversation: calls past it are not executed, and the conversation stops
  (`call_limit`);
- `max_total_tokens` (prompt + completion, the context length): a message that reaches it, or
  feedback that would not fit with at least one more model token, stops the conversation
  (`length_limit`). A message cut by it is left unclosed, so TRL counts the rollout as truncated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from toolrl import formats
from toolrl.multiturn import dialogue
from toolrl.multiturn.cases import MultiTurnCase
from toolrl.multiturn.environment import BfclEnvironment
from toolrl.multiturn.trajectory import CALL_LIMIT, FINISHED, LENGTH_LIMIT, STEP_LIMIT, Step, Trajectory, Turn


@dataclass(frozen=True)
class Limits:
    max_new_tokens: int = 256  # per model message
    max_steps_per_turn: int = 5  # model messages per user turn
    max_calls: int = 20  # tool calls per conversation
    max_total_tokens: int = 8192  # prompt + completion: the context the conversation may fill

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "max_steps_per_turn", "max_calls", "max_total_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"multi-turn limit {name} must be at least 1, got {getattr(self, name)}")


@dataclass
class Message:
    """One assistant message from the policy: its tokens (the end-of-turn token included when the
    model stopped by itself), and the log-prob of each under the sampling distribution if asked."""

    token_ids: list[int]
    finished: bool
    logprobs: list[float] | None = None


class Policy(Protocol):
    """Continues token sequences by one assistant message each.

    `max_new_tokens[i]` bounds sequence i's message; `tokenizer` renders and tokenizes the
    conversation (its chat template) and `end_of_turn` is the token id that closes a message."""

    tokenizer: Any
    end_of_turn: int

    def continue_messages(self, sequences: list[list[int]], max_new_tokens: list[int]) -> list[Message]: ...


@dataclass
class Rollout:
    """One conversation: what happened (`trajectory`), the chat as the template reads it
    (`messages`), and its token record for training (see the module doc for the layout)."""

    case: MultiTurnCase
    trajectory: Trajectory
    messages: list[dict[str, str]]
    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)  # 1 = model token, 0 = environment token
    logprobs: list[float] | None = None  # per completion token; NaN on environment tokens

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.completion_ids)


class _Conversation:
    """A rollout in progress: its environment, the rendered text so far, and counters for the limits."""

    def __init__(self, case: MultiTurnCase, policy: Policy, keep_logprobs: bool):
        self.env = BfclEnvironment(case)
        self.tokenizer = policy.tokenizer
        self.end_of_turn = policy.end_of_turn
        messages = dialogue.opening(case)
        self.text = self._render(messages)
        prompt_ids = self.tokenizer(self.text, add_special_tokens=False)["input_ids"]
        self.rollout = Rollout(case, Trajectory(case.id, case.category, turns=[Turn(user=case.user_text(0))]),
                               messages, prompt_ids, logprobs=[] if keep_logprobs else None)
        self.calls = 0
        self.stop: str | None = None

    @property
    def turn(self) -> Turn:
        return self.rollout.trajectory.turns[-1]

    def _render(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _append(self, ids: list[int], model: bool, logprobs: list[float] | None = None) -> None:
        r = self.rollout
        r.completion_ids.extend(ids)
        r.env_mask.extend([int(model)] * len(ids))
        if r.logprobs is not None:
            r.logprobs.extend(logprobs if logprobs is not None else [float("nan")] * len(ids))

    def budget(self, limits: Limits) -> int:
        return min(limits.max_new_tokens, limits.max_total_tokens - self.rollout.length)

    def take(self, message: Message, limits: Limits) -> None:
        """Record one model message, run its calls, and append what the model reads next (or stop)."""
        if self.rollout.logprobs is not None and message.logprobs is None:
            raise ValueError("converse(logprobs=True) needs a policy that returns log-probs, e.g. HFPolicy(logprobs=True)")
        self._append(message.token_ids, model=True, logprobs=message.logprobs)
        decoded = self.tokenizer.decode(message.token_ids, skip_special_tokens=False,
                                        clean_up_tokenization_spaces=False)
        end = self.tokenizer.decode([self.end_of_turn])
        content = decoded[: -len(end)] if message.finished and decoded.endswith(end) else decoded
        step = Step(text=content, truncated=not message.finished)
        self.turn.steps.append(step)
        if not message.finished and self.rollout.length >= limits.max_total_tokens:
            self.stop = LENGTH_LIMIT  # cut by the context, not by the per-message limit: left unclosed
        else:
            reply = self._act(step, formats.parse(content), limits)
            if self.stop is None:
                self._feed(content, decoded, closed=message.finished, reply=reply, limits=limits)
        if self.stop is not None:  # the last message belongs to the chat, though nothing follows it
            self.rollout.messages = self.rollout.messages + [{"role": "assistant", "content": content}]

    def _act(self, step: Step, parsed: formats.Parsed, limits: Limits) -> str | None:
        """Run the message's calls; returns the user message to append, or None with `stop` set."""
        if parsed.error is not None:
            step.error = parsed.error
            step.results = [dialogue.parse_failure(parsed.error)]
            return self._same_turn(dialogue.observations(step.results), limits)
        if parsed.calls:
            room = limits.max_calls - self.calls
            step.calls = parsed.calls
            refusals = [self.env.refusal(c) for c in parsed.calls[:room]]
            step.refused = [r is not None for r in refusals] + [True] * (len(parsed.calls) - len(refusals))
            step.results = [self.env.run(c) if r is None else r for c, r in zip(parsed.calls[:room], refusals, strict=True)]
            step.results += [f"Not executed: the conversation reached its limit of {limits.max_calls} calls."
                             ] * (len(parsed.calls) - len(step.results))
            self.calls += min(room, len(parsed.calls))
            if len(parsed.calls) > room:
                self.stop = CALL_LIMIT
                return None
            return self._same_turn(dialogue.observations(step.results), limits)
        return self._next_turn()

    def _same_turn(self, reply: str, limits: Limits) -> str | None:
        if len(self.turn.steps) >= limits.max_steps_per_turn:
            self.stop = STEP_LIMIT
            return None
        return reply

    def _next_turn(self) -> str | None:
        case = self.rollout.case
        index = len(self.rollout.trajectory.turns)
        if index >= len(case.turns):
            self.stop = FINISHED
            return None
        added = self.env.open_turn(index)
        self.rollout.trajectory.turns.append(
            Turn(user=case.user_text(index), added_functions=[f["name"] for f in added]))
        return dialogue.next_request(case, index, added)

    def _feed(self, content: str, decoded: str, closed: bool, reply: str, limits: Limits) -> None:
        """Append the environment's tokens: (the message's closing token,) the reply, the next assistant header."""
        messages = self.rollout.messages + [{"role": "assistant", "content": content}, dialogue.feedback(reply)]
        seen = self.text + decoded
        closing = [] if closed else [self.end_of_turn]
        if not closed:
            seen += self.tokenizer.decode(closing)
        text = self._render(messages)
        if not text.startswith(seen):
            raise RuntimeError("the chat template rewrote earlier messages when a new one was appended, so the "
                               "conversation's tokens cannot only grow; the multi-turn loop needs a template that "
                               "renders each message once and appends (ChatML as in SmolLM2 does)")
        ids = closing + self.tokenizer(text[len(seen):], add_special_tokens=False)["input_ids"]
        if self.rollout.length + len(ids) >= limits.max_total_tokens:
            self.stop = LENGTH_LIMIT  # no room for the feedback and one more model token
            return
        self._append(ids, model=False)
        self.rollout.messages = messages
        self.text = text


def converse(cases: list[MultiTurnCase], policy: Policy, limits: Limits = Limits(),
             logprobs: bool = False, progress: str | None = None) -> list[Rollout]:
    """One rollout per case (repeat a case for several rollouts of it; each gets its own environment).

    All conversations step together: each round, one batch of model messages, one per conversation
    still going. Nothing a model writes raises: bad calls and unreadable messages become tool
    messages. `logprobs` keeps the policy's per-token log-probs (the policy must supply them).
    `progress` names a progress bar over the conversations finished (none when None)."""
    from tqdm.auto import tqdm

    conversations = [_Conversation(case, policy, logprobs) for case in cases]
    for c in conversations:
        if c.rollout.length >= limits.max_total_tokens:
            c.stop = LENGTH_LIMIT  # the opening alone fills the context
    with tqdm(total=len(conversations), desc=progress, unit="conversation", disable=progress is None) as bar:
        rounds = 0
        while live := [c for c in conversations if c.stop is None]:
            bar.update(len(conversations) - len(live) - bar.n)
            bar.set_postfix(round=rounds, messages=len(live))
            budgets = [c.budget(limits) for c in live]
            messages = policy.continue_messages([c.rollout.prompt_ids + c.rollout.completion_ids for c in live],
                                                budgets)
            for c, message in zip(live, messages, strict=True):
                c.take(message, limits)
            rounds += 1
        bar.update(len(conversations) - bar.n)
    for c in conversations:
        c.rollout.trajectory.stop = c.stop
    return [c.rollout for c in conversations]
