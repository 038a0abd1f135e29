"""BFCL multi-turn in the evaluate stage: held-out cases only, whole conversations, cached trajectories,
BFCL's multi-turn checker, and the same report, CSVs and metrics as the single-turn categories."""

from __future__ import annotations

import csv
import json

import pytest

from toolrl.config import Params
from toolrl.evaluation import conversations, report
from toolrl.evaluation.runner import MULTI_TURN, evaluate
from toolrl.multiturn.answers import ground_truth_calls
from toolrl.multiturn.loop import Message
from toolrl.multiturn.split import TRAIN, scenario_split
from toolrl.schema.multi_turn import MultiTurnParams

ASSISTANT = "<|im_start|>assistant"


def _message(calls) -> str:
    if not calls:
        return "<think> Done. </think>\n<response> Done. </response>"
    lines = "\n".join(json.dumps({"name": c.name, "parameters": c.arguments}) for c in calls)
    return f"<think> I call. </think>\n<tool_call>\n{lines}\n</tool_call>"


class Replay:
    """A policy that plays each case's ground truth: per user turn one message with that turn's calls (if
    any), then an answer. The case of a sequence is found by its opening's tokens; its place in the
    script by the number of assistant messages so far. `solve=False` never calls."""

    def __init__(self, tokenizer, examples, solve: bool = True):
        self.tokenizer = tokenizer
        self.end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.scripts = []
        for ex in examples:
            opening = tokenizer.apply_chat_template(ex.messages, tokenize=False, add_generation_prompt=True)
            script = [m for turn in ground_truth_calls(ex.gold) for m in ([_message(turn)] if turn and solve else [])
                      + [_message([])]]
            self.scripts.append((tokenizer(opening, add_special_tokens=False)["input_ids"], script))
        assert len({tuple(ids) for ids, _ in self.scripts}) == len(self.scripts), "two cases open alike"

    def continue_messages(self, sequences, max_new_tokens):
        out = []
        for seq in sequences:
            script = next(s for ids, s in self.scripts if seq[:len(ids)] == ids)
            n = self.tokenizer.decode(seq).count(ASSISTANT) - 1
            ids = self.tokenizer(script[min(n, len(script) - 1)], add_special_tokens=False)["input_ids"]
            out.append(Message(ids + [self.end_of_turn], finished=True))
        return out


def params(tmp_path, models, categories, limit=2, **evaluate):
    return Params.model_validate({"evaluate": {
        "models": models, "benchmarks": ["bfcl"], "bfcl_categories": categories, "limit": limit,
        "max_new_tokens": 8, "batch_size": 2, "cache_dir": str(tmp_path / "cache"),
        "output_dir": str(tmp_path / "reports"), **evaluate}})


def test_only_held_out_scenarios_are_drawn_in_the_seeded_nested_order():
    split = MultiTurnParams()
    five = conversations.load_category("multi_turn_miss_func", split, 5, seed=0)
    assert [ex.id for ex in conversations.load_category("multi_turn_miss_func", split, 3, seed=0)] == \
        [ex.id for ex in five[:3]]
    held = conversations.load_category("multi_turn_miss_func", split, None)
    assert len(held) == conversations.held_out_scenarios(split) == 100
    assert all(scenario_split(split).side(ex.id) != TRAIN for ex in held)
    assert {ex.id for ex in conversations.load_category("multi_turn_miss_func", split, 5, seed=1)} != \
        {ex.id for ex in five}
    assert all(ex.benchmark == MULTI_TURN and ex.gold.id == ex.id for ex in five)


@pytest.mark.parametrize("solve", [True, False])
def test_a_replayed_ground_truth_scores_full_and_a_policy_that_never_calls_scores_zero(tiny_model_dir, tmp_path,
                                                                                       solve):
    from toolrl.models import smollm2_tokenizer

    categories = ["multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param"]
    p = params(tmp_path, [str(tiny_model_dir)], categories, limit=2)
    policies = []

    def replay(folder, ev, generator):
        examples = [ex for cat in categories for ex in conversations.load_category(cat, p.multi_turn, 2, ev.seed)]
        policies.append(Replay(smollm2_tokenizer(), examples, solve))
        return policies[-1]

    results = evaluate(p, policy_factory=replay, show_progress=False)
    (model,) = results.models
    assert len(policies) == 1 and model.generated == 6  # one policy for every conversation of the model
    for col in [(MULTI_TURN, c) for c in categories]:
        assert model.accuracy(col) == (1.0 if solve else 0.0), [g.grade for g in model.graded[col]]
        assert all(g.grade.checked for g in model.graded[col])  # BFCL's checker graded them all
    if not solve:  # a turn the ground truth needed calls in got none
        assert report.error_counts(model) == {"empty_turn": 6}
        return
    # a cached trajectory that cannot be read back (a line cut by a crash, an old format) is run again
    for path in (tmp_path / "cache").rglob("multi_turn_base.jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({**r, "completion": "{"}) + "\n" for r in rows))
    again = evaluate(p, policy_factory=replay, show_progress=False)
    assert again.models[0].generated == 2 and again.models[0].accuracy((MULTI_TURN, "multi_turn_base")) == 1.0


def test_tiny_model_end_to_end_cached_and_reported_with_the_single_turn_columns(tiny_model_dir, tmp_path):
    p = params(tmp_path, [str(tiny_model_dir)], ["simple_python", "multi_turn_base"], limit=1,
               multi_turn={"max_new_tokens": 8, "max_total_tokens": 8192})
    first = evaluate(p, show_progress=False)
    (model,) = first.models
    assert model.generated == 2
    (graded,) = model.graded[(MULTI_TURN, "multi_turn_base")]
    assert graded.trajectory["case_id"] == graded.example.id and graded.completion.endswith(
        f"stop: {graded.trajectory['stop']}")
    assert graded.grade.error in ("force_terminated", "empty_turn", "state_mismatch", "response_mismatch", None)
    assert any("held out for evaluation" in note for note in first.notes)

    again = evaluate(p, policy_factory=lambda *a: pytest.fail("a cached conversation was run again"),
                     show_progress=False)
    assert again.models[0].generated == 0
    assert again.models[0].graded[(MULTI_TURN, "multi_turn_base")][0].trajectory == graded.trajectory
    # what the environment says after the opening is in the key: rewording it runs the conversation again
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conversations, "environment_digest", lambda: "reworded")
        assert evaluate(p, show_progress=False).models[0].generated == 1

    files = report.write(again, p.evaluate)
    header = next(csv.reader(files["csv"].open()))
    assert {"bfcl/simple_python", "bfcl/overall", "bfcl_multi_turn/multi_turn_base", "bfcl_multi_turn/overall"} \
        <= set(header)
    scopes = {row["scope"] for row in csv.DictReader(files["intervals"].open())}
    assert {"bfcl_multi_turn/multi_turn_base", "bfcl_multi_turn/overall"} <= scopes
    assert json.loads(files["metrics"].read_text())[model.label]["bfcl"].keys() == {
        "simple_python", "overall", "overall_weighted"}  # BFCL's single-turn overall stays its own
    rows = [json.loads(line) for line in files["examples"].read_text().splitlines()]
    assert [r["trajectory"]["case_id"] for r in rows if r["benchmark"] == MULTI_TURN] == [graded.example.id]
    text = files["markdown"].read_text()
    assert "bfcl_multi_turn/multi_turn_base (n=1)" in text and "held out for evaluation" in text
    conv = json.loads(files["metrics"].read_text())[model.label]["conversations"]
    steps = [s for t in graded.trajectory["turns"] for s in t["steps"]]
    assert conv["conversations"] == 1 and conv["messages_per_trajectory"] == len(steps)
    assert conv["calls_per_trajectory"] == sum(len(s["calls"]) for s in steps)
    assert conv[f"stop/{graded.trajectory['stop']}"] == 1.0
    assert "## Conversations (multi-turn)" in text
    if not graded.grade.correct:  # the failure shows the conversation's reading
        assert "turn 0: " in text and f"stop: {graded.trajectory['stop']}" in text
