"""BFCL's multi-turn categories in the evaluate stage: the model runs each whole conversation.

- Cases: only the scenarios `multi_turn` holds out for evaluation (`multiturn.split`, the same
  function the curate stage trains on the rest with), then the seeded per-category draw every
  benchmark uses (`sampling.draw`, `evaluate.limit`, `evaluate.seed`).
- Running: the one conversation loop (`multiturn.loop.converse`) with a greedy `HFPolicy` over the
  weights `HFGenerator` loads (same dtype and threads), `evaluate.batch_size` conversations at a time,
  limits from `evaluate.multi_turn`. Whatever `evaluate.backend` says: vLLM has no policy here.
- Cache: the trajectory as JSON is the cached "completion", under a generation key of its own
  (`settings`: dtype, greedy, the limits), keyed by the whole case (`BenchmarkCase.conversation`).
- Grading: BFCL's multi-turn checker (`multi_turn.grade_trajectory`).
- Reported as benchmark `bfcl_multi_turn`, so its categories get their own overall and leave BFCL's
  single-turn overall what it was.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable
from itertools import zip_longest
from pathlib import Path
from typing import Any

from toolrl.config import EvaluateParams
from toolrl.evaluation.generation import Generator
from toolrl.evaluation.multi_turn import grade_trajectory
from toolrl.evaluation.records import BenchmarkCase, Grade
from toolrl.evaluation.sampling import draw
from toolrl.hardware import resolve_dtype
from toolrl.multiturn.cases import CATEGORIES, load_cases
from toolrl.multiturn.trajectory import Trajectory
from toolrl.schema.multi_turn import MultiTurnParams

BENCHMARK = "bfcl_multi_turn"


def is_multi_turn(category: str) -> bool:
    return category in CATEGORIES


# ---------------------------------------------------------------- cases


def held_out_scenarios(split: MultiTurnParams) -> int:
    from toolrl.multiturn.split import scenario_split

    return len(scenario_split(split).eval)


def load_category(category: str, split: MultiTurnParams, limit: int | None, seed: int = 0) -> list[BenchmarkCase]:
    """`limit` held-out cases of a multi-turn category drawn with `seed` (None: every held-out case)."""
    from toolrl.multiturn.dialogue import opening
    from toolrl.multiturn.split import evaluation_case_ids

    held = set(evaluation_case_ids(split, [category]))
    cases = [c for c in load_cases(category) if c.id in held]
    return [BenchmarkCase(id=c.id, benchmark=BENCHMARK, category=c.category, messages=opening(c), gold=c,
                          conversation=json.dumps(dataclasses.asdict(c), sort_keys=True, ensure_ascii=False))
            for c in draw(cases, limit, seed, lambda c: c.id)]


# ---------------------------------------------------------------- running


def settings(ev: EvaluateParams) -> dict[str, Any]:
    """What changes a greedy conversation (the cache's generation key). Not `evaluate.max_new_tokens`
    or `backend`: single-turn knobs, and conversations always run on the hf weights. The case's
    opening is in the key already; what the environment says later is not, hence `environment`."""
    out = {"backend": "hf", "dtype": resolve_dtype(ev.dtype), "decoding": "greedy", "loop": ev.multi_turn.model_dump(),
           "environment": environment_digest()}
    if ev.lookup_tokens:  # greedy drafts: the same tokens but for bf16 rounding (generation.settings)
        out["lookup_tokens"] = ev.lookup_tokens
    return out


@functools.cache
def environment_digest() -> str:
    """A digest of the code that writes what a model reads after its first message (results, errors,
    the next requests): rewording any of it makes cached conversations stale."""
    import inspect

    from toolrl.multiturn import dialogue, environment, loop

    text = "".join(inspect.getsource(m) for m in (dialogue, environment, loop))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_policy(folder: str | Path, ev: EvaluateParams, generator: Generator | None = None):
    """A greedy `HFPolicy` on the model `HFGenerator` loads (its dtype and threads); the single-turn
    generator's own model when it already loaded one, so a model is loaded once."""
    from toolrl.evaluation.generation import HFGenerator
    from toolrl.multiturn.policy import HFPolicy

    if not isinstance(generator, HFGenerator):
        generator = HFGenerator(folder, ev.batch_size, ev.max_new_tokens, resolve_dtype(ev.dtype), ev.threads,
                                lookup_tokens=ev.lookup_tokens)
    return HFPolicy(generator.model, generator.tokenizer, lookup=generator.lookup)


# Called after each batch of conversations with its cases and their trajectories as JSON (to cache them).
OnDone = Callable[[list[BenchmarkCase], list[str]], None]


def run(examples: list[BenchmarkCase], policy: Any, ev: EvaluateParams, on_done: OnDone) -> None:
    """Each case's whole conversation, `evaluate.batch_size` at a time (all steps of a batch together)."""
    from toolrl.multiturn.loop import Limits, converse

    limits = Limits(**ev.multi_turn.model_dump())
    for start in range(0, len(examples), ev.batch_size):
        batch = examples[start:start + ev.batch_size]
        rollouts = converse([ex.gold for ex in batch], policy, limits)
        on_done(batch, [json.dumps(r.trajectory.to_dict(), ensure_ascii=False) for r in rollouts])


# ---------------------------------------------------------------- grading and showing


def read(completion: str) -> Trajectory | None:
    """A cached trajectory, or None when it cannot be read (the case is then run again)."""
    try:
        return Trajectory.from_dict(json.loads(completion))
    except (ValueError, TypeError):
        return None


def grade(example: BenchmarkCase, completion: str) -> Grade:
    return grade_trajectory(example.gold, Trajectory.from_dict(json.loads(completion)))


def _cut(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width] + " [...]"


def view(trajectory: Trajectory, width: int = 120) -> str:
    """A compact reading of a conversation for the report: per turn the request, each call with its
    result, answers and unreadable messages, all cut to `width` characters. Turns count from 0, as the
    checker's messages count them ("Model response list is empty for turn 1" is the second)."""
    from toolrl.multiturn.environment import call_string

    lines = []
    for number, turn in enumerate(trajectory.turns):
        added = f" (new tools: {', '.join(turn.added_functions)})" if turn.added_functions else ""
        lines.append(f"turn {number}{added}: {_cut(turn.user, width)}")
        for step in turn.steps:
            cut = " [cut at max_new_tokens]" if step.truncated else ""
            if step.error:
                lines.append(f"  unreadable{cut}: {_cut(step.error, width)}")
            elif step.calls:
                lines += [f"  {_cut(call_string(c), width)} -> {_cut(r or '(not run)', width)}"
                          for c, r in zip_longest(step.calls, step.results) if c is not None]
            else:
                lines.append(f"  says{cut}: {_cut(step.text, width) or '(nothing)'}")
    lines.append(f"stop: {trajectory.stop}")
    return "\n".join(lines)
