"""BFCL's multi-turn cases as training data: RL records and SFT trajectories, training scenarios only.

Which scenarios train is `toolrl.multiturn.split` (params `multi_turn`): a case whose scenario is
held out for evaluation is counted and skipped, never converted. For a training case:

- the RL record holds what a GRPO rollout needs to rebuild it: the case id and category (the
  environment and the later user turns come from `load_cases`), the opening prompt
  (`dialogue.opening`) and BFCL's ground-truth calls per turn;
- the SFT trajectory is the ground truth played through `BfclEnvironment`: per turn one assistant
  message with the turn's calls in one `<tool_call>` block, the results as `<obs>` lines, then an
  assistant message with a short `<response>` that hands the turn back (a turn whose ground truth
  calls nothing gets the response only). Thoughts are ToolRL's placeholders, as in the single-turn
  sources.

Ground-truth calls are BFCL's decoded strings (`mv(source='a', destination='b')`), read with `ast`
(literals only, nothing evaluated); positional arguments are named from the method's signature.
Each call is checked against the tools on offer at its turn (`validate.check`) and its result must
not be an error: a case that fails either is quarantined with the reason.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from toolrl.config import ConfigError, DataParams, SourceParams
from toolrl.data import base, validate
from toolrl.data.readers import RawRecord, sample
from toolrl.data.schema import Call, CanonicalExample, Rejected, Target, Tool, completion_text
from toolrl.formats import ToolCall
from toolrl.multiturn import dialogue
from toolrl.multiturn.cases import CATEGORIES, MultiTurnCase, load_cases
from toolrl.multiturn.environment import BfclEnvironment
from toolrl.multiturn.split import ScenarioSplit
from toolrl.multiturn.trajectory import Step, Trajectory, Turn

GROUND_TRUTH_ERROR = "ground_truth_error"  # a ground-truth call that the environment answers with an error

# The message that hands a turn back. After calls: a few phrasings picked by a hash of (case, turn),
# so SFT does not learn one canned string. Without calls, what the category's empty turns mean:
# miss_func holds back the function the request needs, miss_param the information.
DONE_RESPONSES = (
    "Done: I have completed the requested steps.",
    "All set. The steps you asked for are complete.",
    "That is finished; the results are above.",
)
NO_CALL_RESPONSES = {
    "multi_turn_miss_func": "None of the functions I have can do this; I would need a function for it.",
    "multi_turn_miss_param": "I need more information before I can do this: please give me the missing details.",
}
NO_CALL_DEFAULT = "I cannot do this with the functions available here."


def check_categories(categories: list[str]) -> list[str]:
    """The categories to read (all four when empty); any other name is an error."""
    for cat in categories:
        if cat not in CATEGORIES:
            raise ConfigError(f"data.sources bfcl_multi_turn category {cat!r} is not a BFCL multi-turn category; "
                              f"use some of: {', '.join(CATEGORIES)}")
    return list(categories) or list(CATEGORIES)


def ground_truth_call(text: str, env: BfclEnvironment) -> ToolCall:
    """`name(a, b=1)` -> ToolCall with every argument named (positional ones from the signature)."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            raise ValueError("not a call of a plain function name")
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
    except (SyntaxError, ValueError) as exc:
        raise ValueError(f"ground-truth call {text!r} cannot be read: {exc}") from None
    name = node.func.id
    if name not in env.methods:
        raise ValueError(f"ground-truth call {text!r}: no function {name!r} in {', '.join(env.case.involved_classes)}")
    try:
        bound = inspect.signature(env.methods[name]).bind(*args, **kwargs)
    except TypeError as exc:
        raise ValueError(f"ground-truth call {text!r} does not fit {name}'s signature: {exc}") from None
    return ToolCall(name, dict(bound.arguments))


def failed(result: str) -> bool:
    """An environment message that reports an error: ours ("Error..."), a tool's {"error": ...}, TicketAPI's
    {"success": false}, or TradingBot's ["Error: ..."] (a list, as its watchlist calls answer)."""
    if result.startswith("Error"):
        return True
    try:
        value = json.loads(result)
    except ValueError:
        try:
            value = ast.literal_eval(result)  # a result that was not JSON is its Python repr
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return False
    if isinstance(value, dict):
        return "error" in value or value.get("success") is False
    return isinstance(value, list) and bool(value) and isinstance(value[0], str) and value[0].startswith("Error")


def turn_response(case: MultiTurnCase, turn: int, called: bool) -> str:
    if not called:
        return NO_CALL_RESPONSES.get(case.category, NO_CALL_DEFAULT)
    h = int.from_bytes(hashlib.sha256(f"{case.id}:{turn}".encode()).digest()[:8], "big")
    return DONE_RESPONSES[h % len(DONE_RESPONSES)]


class GroundTruthProblem(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def _check_calls(case: MultiTurnCase, turn: int, calls: list[ToolCall], offered: list[dict[str, Any]]) -> None:
    example = CanonicalExample(id=f"{case.id}:t{turn}", source="bfcl_multi_turn",
                               tools=[Tool(**t) for t in dialogue.tools_of(offered)], conversation=[],
                               target=Target(calls=[Call(name=c.name, arguments=c.arguments) for c in calls]))
    problem = validate.check(example)
    if problem:
        raise GroundTruthProblem(problem[0], f"turn {turn}: {problem[1]}")


def replay(case: MultiTurnCase) -> tuple[Trajectory, list[dict[str, str]]]:
    """The ground truth played through a fresh environment: the trajectory and its chat messages.

    Raises GroundTruthProblem (reason, detail) when a call cannot be read, does not fit the tools
    on offer, or comes back as an error."""
    env = BfclEnvironment(case)
    offered = list(case.functions)
    trajectory = Trajectory(case_id=case.id, category=case.category)
    messages = dialogue.opening(case)
    for t, texts in enumerate(case.ground_truth):
        added = env.open_turn(t)
        offered += added
        if t > 0:
            messages.append(dialogue.feedback(dialogue.next_request(case, t, added)))
        turn = Turn(user=case.user_text(t), added_functions=[f["name"] for f in added])
        if texts:
            try:
                calls = [ground_truth_call(s, env) for s in texts]
            except ValueError as exc:
                raise GroundTruthProblem(base.UNPARSEABLE_TARGET, f"turn {t}: {exc}") from None
            _check_calls(case, t, calls, offered)
            text = completion_text(Target(calls=[Call(name=c.name, arguments=c.arguments) for c in calls]))
            results = [env.execute(c) for c in calls]
            bad = [f"{c.name}: {r[:200]}" for c, r in zip(calls, results, strict=True) if failed(r)]
            if bad:
                raise GroundTruthProblem(GROUND_TRUTH_ERROR, f"turn {t}: {'; '.join(bad)}")
            turn.steps.append(Step(text=text, calls=calls, results=results))
            messages += [{"role": "assistant", "content": text},
                         dialogue.feedback(dialogue.observations(results))]
        text = completion_text(Target(response=turn_response(case, t, bool(texts))))
        turn.steps.append(Step(text=text))
        messages.append({"role": "assistant", "content": text})
        trajectory.turns.append(turn)
    return trajectory, messages


def rl_record(rid: str, case: MultiTurnCase) -> dict[str, Any]:
    return {"id": rid, "case_id": case.id, "category": case.category, "scenario": case.scenario,
            "prompt": dialogue.opening(case), "ground_truth_calls": case.ground_truth}


def sft_record(rid: str, case: MultiTurnCase, trajectory: Trajectory,
               messages: list[dict[str, str]]) -> dict[str, Any]:
    return {"id": rid, "case_id": case.id, "category": case.category, "scenario": case.scenario,
            "messages": messages, "trajectory": trajectory.to_dict()}


@dataclass
class MultiTurnData:
    """What one bfcl_multi_turn source gave: training records, and every case accounted for."""

    rl: list[dict[str, Any]] = field(default_factory=list)
    sft: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    held_out: list[str] = field(default_factory=list)  # case ids of evaluation scenarios, not converted
    read: int = 0


def records(src: SourceParams) -> list[RawRecord]:
    """Every case of the source's categories (category by category, by scenario), as raw records."""
    cases = [c for cat in check_categories(src.categories) for c in load_cases(cat)]
    return [RawRecord(index=i, record=c, provenance={"category": c.category, "case_id": c.id})
            for i, c in enumerate(cases)]


def curate_source(src: SourceParams, data: DataParams, split: ScenarioSplit,
                  load: Callable[[SourceParams], list[RawRecord]] = records) -> MultiTurnData:
    """Sample the source's cases (`limit`, seeded), hold out evaluation scenarios, convert the rest."""
    out = MultiTurnData()
    seed = data.seed if src.seed is None else src.seed
    for raw in sample(load(src), src.limit, seed):
        case: MultiTurnCase = raw.record
        out.read += 1
        if split.is_eval(case.id):
            out.held_out.append(case.id)
            continue
        rid = f"{src.tag}:{case.id}"
        try:
            trajectory, messages = replay(case)
        except GroundTruthProblem as exc:
            out.rejected.append(Rejected(exc.reason, str(exc), src.tag, base.provenance(src, raw), rid,
                                         {"id": case.id, "ground_truth": case.ground_truth}))
            continue
        out.rl.append(rl_record(rid, case))
        out.sft.append(sft_record(rid, case, trajectory, messages))
    return out
