"""The TRM in its native setting: the calls of multi-turn conversations, each read in its context.

**Labels** (`trajectory_labels`). One verdict per call of a trajectory, necessity x quality:

- necessity comes from the single-turn aligner (`labels.rule_labels`) run once per user turn, on all
  the calls of the turn's model messages in order, against that turn's ground-truth calls: a call of
  an earlier message of the turn takes its reference call away from later ones (an exact match is
  aligned first, wherever it sits in the turn), and a repeat is a repeat across the turn's messages.
  The tools are those on offer in that turn (miss_func adds some later);
- quality is the aligner's (the arguments match the reference call under the declared types) AND
  the call ran without error: a result that starts with "Error" (the environment's messages about
  unknown functions, bad arguments, a tool's exception) or a tool's own `{"error": ...}`
  (`data.bfcl_multi_turn.failed`, the check the curate stage holds the ground truth to), or a call
  the loop did not run (the conversation's call limit). A right call that fails in a state the model
  broke earlier is a bad call here: the environment, not the reference, has the last word;
- the lines of a message whose call block could not be parsed were never run: label 0
  (`unparsed_message`), and they align with nothing.

**Steps in context** (`message_calls`). A multi-turn step is the conversation as the policy read it
up to the model message (the system prompt, earlier turns, tool results), the message's text before
the call, and the call: the single-turn step record with a longer prompt. The prompt is the decoded
token record (`prompt_ids + completion_ids` up to the message), a string that `steps.encode_step`
takes as already rendered; the loop guarantees it is the chat template's rendering of the messages
(docs/MULTI_TURN.md). One function builds the steps from a token record, so the `trm_data` stage (from
`converse`'s rollouts) and TRM-guided GRPO (from TRL's batch) see the same text. Openings are ~3.5k
tokens; `encode_step` cuts long steps from the left, so the call and the turns just before it stay.

Each call also carries its position key for the turn-level advantage, (user turn, index of the call
in the turn): see docs/TRM.md, "Multi-turn".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from toolrl.multiturn.cases import MultiTurnCase
from toolrl.multiturn.trajectory import Step, Trajectory
from toolrl.trm.calls import CallSpan, call_spans
from toolrl.trm.labels import Verdict, rule_labels


def turn_tools(case: MultiTurnCase, turn: int) -> list[dict[str, Any]]:
    """The tools on offer in user turn `turn` (the opening's, plus those added up to it), ToolRL-style."""
    from toolrl.multiturn.dialogue import tools_of

    functions = list(case.functions)
    for t in sorted(k for k in case.added_functions if k <= turn):
        functions += case.added_functions[t]
    return tools_of(functions)


def ran_ok(result: str) -> bool:
    """The environment ran the call and it did not fail."""
    from toolrl.data.bfcl_multi_turn import failed

    return not failed(result) and not result.startswith("Not executed")


def step_spans(step: Step) -> list[CallSpan]:
    """The call lines of one model message (the text the loop parsed)."""
    spans = call_spans(step.text)
    if step.error is None and [s.call for s in spans] != step.calls:
        raise ValueError(f"a trajectory step's calls {[c.name for c in step.calls]} are not the calls of its text: "
                         "was the trajectory written by toolrl.multiturn.loop?")
    return spans


def trajectory_labels(case: MultiTurnCase, trajectory: Trajectory) -> list[list[Verdict]]:
    """One verdict per call line of each model message, messages in conversation order (see the module doc)."""
    from toolrl.multiturn.answers import ground_truth_calls

    if trajectory.case_id != case.id:
        raise ValueError(f"trajectory of {trajectory.case_id} labelled against case {case.id}")
    reference = ground_truth_calls(case)
    out: list[list[Verdict]] = []
    for t, turn in enumerate(trajectory.turns):
        spans = [step_spans(s) for s in turn.steps]
        # the parsed messages' calls, numbered through the turn, aligned together
        ran = [(k, span) for k, step in enumerate(turn.steps) if step.error is None for span in spans[k]]
        numbered = [replace(span, index=i) for i, (_, span) in enumerate(ran)]
        aligned = iter(rule_labels(numbered, reference[t], turn_tools(case, t)))
        for step, message in zip(turn.steps, spans, strict=True):
            if step.error is not None:
                out.append([Verdict(0, 0, "unparsed_message") for _ in message])
                continue
            verdicts = []
            for result in step.results:
                v = next(aligned)
                verdicts.append(v if ran_ok(result) or not v.quality else
                                Verdict(v.necessity, 0, "not_executed" if result.startswith("Not executed")
                                        else "execution_error"))
            out.append(verdicts)
    return out


@dataclass(frozen=True)
class CallStep:
    """One call of a multi-turn completion: where it is, and the step the TRM reads."""

    message: int  # model message number in the conversation
    turn: int  # user turn
    index_in_turn: int
    tokens: tuple[int, int]  # [start, end) in completion_ids
    context: str  # the conversation up to the message, as the policy read it
    prefix: str  # the message's text before the call
    call: str

    @property
    def key(self) -> tuple[int, int]:
        """Position for the turn-level advantage: (user turn, call number in the turn)."""
        return self.turn, self.index_in_turn

    @property
    def step(self) -> tuple[str, str, str]:
        return self.context, self.prefix, self.call


def model_runs(env_mask: Sequence[int]) -> list[tuple[int, int]]:
    """[start, end) of each run of model tokens (env_mask 1): one run per model message."""
    runs, start = [], None
    for i, m in enumerate([*env_mask, 0]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            runs.append((start, i))
            start = None
    return runs


def message_calls(tokenizer: Any, prompt_ids: Sequence[int], completion_ids: Sequence[int],
                  env_mask: Sequence[int], trajectory: Trajectory) -> list[CallStep]:
    """Every call line of a multi-turn completion, in order (see the module doc)."""
    from toolrl.trm.calls import call_token_spans

    steps = [(t, s) for t, turn in enumerate(trajectory.turns) for s in turn.steps]
    runs = model_runs(env_mask[: len(completion_ids)])
    if len(runs) != len(steps):
        raise ValueError(f"{trajectory.case_id}: {len(runs)} runs of model tokens for {len(steps)} model messages; "
                         "the env_mask and trajectory are not of one rollout")
    ids = list(prompt_ids) + list(completion_ids)
    out: list[CallStep] = []
    counts: dict[int, int] = {}
    for m, ((turn, step), (a, b)) in enumerate(zip(steps, runs, strict=True)):
        spans = step_spans(step)
        if not spans:
            continue
        context = tokenizer.decode(ids[: len(prompt_ids) + a], skip_special_tokens=False,
                                   clean_up_tokenization_spaces=False)
        tokens = call_token_spans(tokenizer, list(completion_ids[a:b]), spans)
        for span, (s, e) in zip(spans, tokens, strict=True):
            i = counts.get(turn, 0)
            counts[turn] = i + 1
            out.append(CallStep(m, turn, i, (a + s, a + e), context, step.text[: span.start], span.text))
    return out


def rollout_records(case: MultiTurnCase, trajectory: Trajectory, calls: list[CallStep],
                    sample: int) -> list[dict[str, Any]]:
    """Rule-labelled step records (`steps.py`'s fields, plus turn and message) of one rollout's calls."""
    verdicts = [v for message in trajectory_labels(case, trajectory) for v in message]
    if len(verdicts) != len(calls):
        raise ValueError(f"{case.id}: {len(verdicts)} verdicts for {len(calls)} calls (a bug)")
    return [
        {"id": f"{case.id}/s{sample}/m{c.message}/c{k}", "prompt_id": case.id, "sample": sample, "call_index": k,
         "turn": c.turn, "message": c.message, "prompt": c.context, "prefix": c.prefix, "call": c.call,
         "label": v.label, "necessity": v.necessity, "quality": v.quality, "reason": v.reason,
         "rule_label": v.label, "labeler": "rule", "source": "policy", "kind": None}
        for k, (c, v) in enumerate(zip(calls, verdicts, strict=True))
    ]


def trajectory_call_scores(scorer: Any, tokenizer: Any, prompt_ids: Sequence[int], completion_ids: Sequence[int],
                           env_mask: Sequence[int], trajectory: Trajectory) -> list[dict[str, Any]]:
    """The TRM's score of each call of one rollout, for sample tables: turn, message, call text, score."""
    calls = message_calls(tokenizer, prompt_ids, completion_ids, env_mask, trajectory)
    scores = scorer.score_steps([c.step for c in calls])
    return [{"turn": c.turn, "message": c.message, "call": c.call, "score": s} for c, s in zip(calls, scores, strict=True)]


# ---------------------------------------------------------------- the trm_data stage, multi-turn mode


def _curated(params: Any, name: str) -> list[dict[str, Any]]:
    from pathlib import Path

    from toolrl.jsonl import read_jsonl

    path = Path(params.data.output_dir) / "multi_turn" / name
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: trm.data.task multi_turn samples conversations on the curated "
                                "multi-turn training cases; add a bfcl_multi_turn source to data.sources and run "
                                "`toolrl data curate` (or `dvc repro curate`)")
    return [row for _, row in read_jsonl(path, "re-run `toolrl data curate`")]


def training_cases(params: Any) -> tuple[list[MultiTurnCase], list[dict[str, Any]]]:
    """(sampled cases, reference replays): a seeded sample of `trm.data.prompts` curated multi-turn
    training cases (the curate stage left the evaluation scenarios out), and the curated ground-truth
    replays (`train_sft.jsonl`) of those cases plus up to `reference_prompts` others, when
    `reference_positives`."""
    import random

    from toolrl.multiturn.answers import case_by_id

    sec = params.trm.data
    ids = sorted({str(row["case_id"]) for row in _curated(params, "train_rl.jsonl")})
    if len(ids) < 2:
        raise ValueError(f"{params.data.output_dir}/multi_turn/train_rl.jsonl has {len(ids)} case(s): the "
                         "multi-turn TRM data needs at least 2 (one to validate on)")
    picked = random.Random(sec.seed).sample(ids, min(sec.prompts, len(ids)))
    replays: list[dict[str, Any]] = []
    if sec.reference_positives:
        replays = _curated(params, "train_sft.jsonl")
        others = [r for r in replays if r["case_id"] not in picked]
        extra = others if sec.reference_prompts is None else others[:sec.reference_prompts]
        replays = [r for r in replays if r["case_id"] in picked] + extra
    return [case_by_id(i) for i in picked], replays


def reference_records(replay: dict[str, Any]) -> list[dict[str, Any]]:
    """The ground truth's calls as positives, each in the replayed conversation (a curated SFT record:
    its trajectory and chat messages, one assistant message per trajectory step)."""
    trajectory = Trajectory.from_dict(replay["trajectory"])
    messages = replay["messages"]
    at = [k for k, m in enumerate(messages) if m["role"] == "assistant"]
    steps = [(t, s) for t, turn in enumerate(trajectory.turns) for s in turn.steps]
    if len(at) != len(steps):
        raise ValueError(f"curated replay {replay.get('id')}: {len(at)} assistant messages for {len(steps)} "
                         "trajectory steps; re-run `toolrl data curate`")
    out = []
    for m, (k, (turn, step)) in enumerate(zip(at, steps, strict=True)):
        for span in step_spans(step):
            out.append({"id": f"{replay['case_id']}/ref/m{m}/c{span.index}", "prompt_id": replay["case_id"],
                        "sample": -1, "call_index": span.index, "turn": turn, "message": m,
                        "prompt": messages[:k], "prefix": step.text[: span.start], "call": span.text, "label": 1,
                        "necessity": 1, "quality": 1, "reason": "reference", "rule_label": 1, "labeler": "rule",
                        "source": "reference", "kind": None})
    return out


def sample_rollouts(folder: Any, cases: list[MultiTurnCase], sec: Any) -> tuple[list[Any], Any]:
    """(rollouts, the policy's tokenizer): `samples_per_prompt` conversations per case from the policy
    in `folder` (seeded sampling)."""
    from toolrl.decode import Lookup
    from toolrl.hardware import resolve_dtype
    from toolrl.models import load_model
    from toolrl.multiturn.loop import Limits, converse
    from toolrl.multiturn.policy import HFPolicy

    model, tokenizer = load_model(str(folder), dtype=resolve_dtype(sec.dtype))
    policy = HFPolicy(model.eval(), tokenizer, temperature=sec.temperature, seed=sec.seed,
                      batch_size=sec.generation_batch_size,
                      lookup=Lookup(sec.lookup_tokens) if sec.lookup_tokens else None)
    limits = Limits(max_new_tokens=sec.max_new_tokens, max_steps_per_turn=sec.max_steps_per_turn,
                    max_calls=sec.max_calls, max_total_tokens=sec.max_total_tokens)
    return converse([c for c in cases for _ in range(sec.samples_per_prompt)], policy, limits,
                    progress="conversations"), tokenizer


def rollout_steps(rollouts: list[Any], tokenizer: Any, stats: Any) -> list[dict[str, Any]]:
    """Labelled step records of every call of every rollout, and the rollouts' counts in `stats`."""
    steps: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for r in rollouts:
        sample = seen[r.case.id] = seen.get(r.case.id, -1) + 1
        t = r.trajectory
        calls = message_calls(tokenizer, r.prompt_ids, r.completion_ids, r.env_mask, t)
        records = rollout_records(r.case, t, calls, sample)
        stats["completions"] += 1
        stats["completions_with_calls"] += int(bool(calls))
        stats["calls"] += len(calls)
        stats["turns"] += len(r.case.turns)
        stats["turns_completed"] += t.turns_completed
        stats[f"stop/{t.stop}"] += 1
        for rec in records:
            stats[f"rule_reason/{rec['reason'].split(':')[0]}"] += 1
        steps += records
    return steps


def build_multi_turn(params: Any, rollouts: list[Any], tokenizer: Any, say: Any = print,
                     replays: list[dict[str, Any]] | None = None) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """Label, add the reference positives of `replays`, hard negatives, dedupe, split by scenario,
    balance: ({split: records}, stats)."""
    import random
    from collections import Counter

    from toolrl.multiturn.answers import case_by_id, ground_truth_calls
    from toolrl.multiturn.cases import scenario_of
    from toolrl.trm.data import SPLITS, dedupe, split_by_prompt, summarise
    from toolrl.trm.negatives import balance, hard_negatives

    sec = params.trm.data
    stats: Counter = Counter()
    stats["prompts"] = len({r.case.id for r in rollouts})
    steps = rollout_steps(rollouts, tokenizer, stats)
    cases = {r.case.id: r.case for r in rollouts}
    for replay in replays or []:
        cases.setdefault(replay["case_id"], case_by_id(replay["case_id"]))
        steps += reference_records(replay)
    stats["reference_only_prompts"] = len(cases) - stats["prompts"]
    rng = random.Random(sec.seed)
    negatives: list[dict[str, Any]] = []
    for step in steps:
        if step["label"] == 1 and sec.hard_negatives_per_call:
            case = cases[step["prompt_id"]]
            made = hard_negatives(step, turn_tools(case, step["turn"]), ground_truth_calls(case)[step["turn"]],
                                  list(sec.negative_kinds), sec.hard_negatives_per_call, rng, stats)
            negatives += [{**n, "turn": step["turn"], "message": step["message"]} for n in made]
    steps = dedupe(steps + negatives, stats)
    # the four categories of a scenario are variants of one conversation: they stay on one side
    side = split_by_prompt([str(scenario_of(i)) for i in cases], sec.val_fraction, sec.seed)
    splits = {name: [s for s in steps if side[str(scenario_of(s["prompt_id"]))] == name] for name in SPLITS}
    before = len(splits["train"])
    splits["train"], dropped = balance(splits["train"], sec.positive_fraction, sec.max_records, rng)
    stats.update(dropped)
    say(f"trm data (multi-turn): {stats['completions']} conversations, {stats['calls']} calls, {len(steps)} step "
        f"records ({before} train before balancing, {len(splits['train'])} after; {len(splits['val'])} val)")
    out = summarise(stats, splits, [], sec)
    n = max(stats["completions"], 1)
    out["task"] = "multi_turn"
    out["mean_calls_per_trajectory"] = stats["calls"] / n
    out["mean_turns_completed"] = stats["turns_completed"] / n
    out["turn_completion_rate"] = stats["turns_completed"] / max(stats["turns"], 1)
    return splits, out
