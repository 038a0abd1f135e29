"""BFCL multi-turn data: evaluation scenarios never train, trajectories replay to BFCL's end state,
the card counts what it says."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import uuid

import pytest

from toolrl.config import ConfigError, MultiTurnParams, Params, SourceParams
from toolrl.data import card
from toolrl.data.bfcl_multi_turn import GROUND_TRUTH_ERROR, curate_source, failed, ground_truth_call, replay
from toolrl.data.curate import curate
from toolrl.data.readers import RawRecord
from toolrl.data.schema import check_multi_turn_rl, check_multi_turn_sft
from toolrl.formats import ToolCall
from toolrl.jsonl import read_jsonl
from toolrl.multiturn.cases import ADDED_FUNCTIONS_NOTE, CATEGORIES, load_cases
from toolrl.multiturn.environment import BfclEnvironment
from toolrl.multiturn.split import (
    EVAL,
    TRAIN,
    ScenarioSplit,
    config_key,
    evaluation_case_ids,
    first_turn_key,
    scenario_split,
    split_cases,
)
from toolrl.multiturn.trajectory import Step, Trajectory, Turn

LIMIT = 40  # cases sampled over the four categories: about 20 train, seconds to curate


@pytest.fixture(scope="module")
def cases():
    return {cat: load_cases(cat) for cat in CATEGORIES}


@pytest.fixture(scope="module")
def split():
    return scenario_split(MultiTurnParams())


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    out = tmp_path_factory.mktemp("curated")
    params = Params.model_validate({"data": {
        "sources": [{"name": "bfcl_multi_turn", "limit": LIMIT}], "output_dir": str(out)}})
    result = curate(params, track=False)
    folder = out / "multi_turn"
    rows = {name: [r for _, r in read_jsonl(folder / f"{name}.jsonl", "", ValueError)]
            for name in ("train_rl", "train_sft", "quarantine")}
    return result, rows


def _eval_keys(cases, split):
    held = [c for cat in CATEGORIES for c in cases[cat] if c.scenario in split.eval]
    return {config_key(c) for c in held}, {first_turn_key(c) for c in held}


def test_split_keeps_shared_states_and_openings_on_one_side(cases, split):
    assert (len(split.train), len(split.eval)) == (100, 100)
    assert [66, 70, 74] in split.groups and [40, 43] in split.groups
    by_key: dict[str, set[str]] = {}
    for cat in CATEGORIES:
        for c in cases[cat]:
            for key in (config_key(c), first_turn_key(c)):
                by_key.setdefault(key, set()).add(split.assignment[c.scenario])
    assert all(len(sides) == 1 for sides in by_key.values())
    # Later user turns: only BFCL's added-functions note and one two-word follow-up recur across scenarios.
    sides: dict[str, set[str]] = {}
    for cat in CATEGORIES:
        for c in cases[cat]:
            for t in range(len(c.turns)):
                sides.setdefault(c.user_text(t), set()).add(split.assignment[c.scenario])
    shared = {text for text, s in sides.items() if len(s) > 1} - {ADDED_FUNCTIONS_NOTE}
    assert all(len(text.split()) <= 5 for text in shared), shared


def test_split_is_deterministic_for_a_seed(cases):
    every = [c for cat in CATEGORIES for c in cases[cat]]
    first, again = split_cases(every, 0, 0.5), split_cases(list(reversed(every)), 0, 0.5)
    assert first.assignment == again.assignment
    assert split_cases(every, 1, 0.5).assignment != first.assignment
    quarter = split_cases(every, 0, 0.25)
    assert 50 <= len(quarter.eval) <= 52  # a group never splits: the share is passed by at most size - 1


def test_evaluation_case_ids_are_the_held_out_scenarios_in_every_category(split):
    ids = evaluation_case_ids(MultiTurnParams())
    assert len(ids) == 4 * len(split.eval)
    assert all(split.is_eval(i) for i in ids)
    assert evaluation_case_ids(MultiTurnParams(), ["multi_turn_base"]) == [f"multi_turn_base_{s}"
                                                                          for s in sorted(split.eval)]
    with pytest.raises(ValueError, match="not among BFCL's multi-turn scenarios"):
        split.side("multi_turn_base_999")


def test_no_evaluated_scenario_appears_in_training(curated, cases, split):
    result, rows = curated
    records = rows["train_rl"] + rows["train_sft"]
    assert rows["train_rl"] and len(rows["train_rl"]) == len(rows["train_sft"])
    eval_configs, eval_openings = _eval_keys(cases, split)
    for r in records:
        case = cases[r["category"]][r["scenario"]]
        assert case.id == r["case_id"] and split.side(r["case_id"]) == TRAIN
        assert config_key(case) not in eval_configs
        assert first_turn_key(case) not in eval_openings
    # and what the model reads: the first <user> line of every prompt and trajectory
    for r in rows["train_rl"]:
        opening = re.search(r"<user> (.*?) </user>", r["prompt"][1]["content"], re.S).group(1)
        assert " ".join(opening.lower().split()) not in eval_openings
    mt = result.stats["multi_turn"]
    assert mt["scenarios"][TRAIN] == 100 and mt["scenarios"][EVAL] == 100
    counted = {k: sum(c[k] for c in mt["cases"].values()) for k in ("read", "held_out", "kept", "quarantined")}
    assert counted["read"] == LIMIT == counted["held_out"] + counted["kept"] + counted["quarantined"]
    assert counted["kept"] == len(rows["train_rl"]) and counted["quarantined"] == len(rows["quarantine"])


def test_records_pass_their_checks(curated):
    _, rows = curated
    assert all(check_multi_turn_rl(r) is None for r in rows["train_rl"])
    assert all(check_multi_turn_sft(r) is None for r in rows["train_sft"])
    broken = copy.deepcopy(rows["train_sft"][0])
    broken["messages"][2]["content"] = "<think> x </think>\n<response> skipped the calls </response>"
    assert check_multi_turn_sft(broken) == "the assistant messages are not the trajectory's steps"
    assert "category" in check_multi_turn_rl({**rows["train_rl"][0], "category": "simple_python"})


def _bfcl_end_state(case):
    """BFCL's own executor (eval of its ground-truth strings), turn after turn: the reference."""
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_utils import execute_multi_turn_func_call

    name, instances = f"toolrl_ref_{uuid.uuid4().hex[:8]}", {}
    for calls in case.ground_truth:
        _, instances = execute_multi_turn_func_call(calls, copy.deepcopy(case.initial_config),
                                                    case.involved_classes, name, case.id,
                                                    long_context=case.long_context)
    return {k: copy.deepcopy({a: v for a, v in vars(i).items() if not a.startswith("_")})
            for k, i in instances.items()}


def test_sft_trajectories_replay_to_the_ground_truths_end_state(curated, cases):
    _, rows = curated
    for r in rows["train_sft"]:
        case = cases[r["category"]][r["scenario"]]
        trajectory = Trajectory.from_dict(json.loads(json.dumps(r["trajectory"])))
        assert len(trajectory.turns) == len(case.ground_truth)
        env = BfclEnvironment(case)
        for t, turn in enumerate(trajectory.turns):
            env.open_turn(t)
            assert len([c for s in turn.steps for c in s.calls]) == len(case.ground_truth[t])
            for step in turn.steps:
                assert not any(failed(env.execute(c)) for c in step.calls)
            assert not turn.steps[-1].calls  # every turn ends with a response
        assert env.state() == _bfcl_end_state(case), case.id


def test_a_ground_truth_that_fails_is_quarantined_with_its_reason(cases):
    everything_trains = ScenarioSplit(groups=[[s] for s in range(200)], assignment=dict.fromkeys(range(200), TRAIN))
    picked = [cases["multi_turn_base"][0], cases["multi_turn_miss_func"][49], cases["multi_turn_base"][173]]
    # a call that runs but whose tool reports an error: cd into a folder that is not there
    broken = dataclasses.replace(picked[0], id="multi_turn_base_1",
                          ground_truth=[["cd(folder='nowhere')"], *picked[0].ground_truth[1:]])
    picked.append(broken)
    raws = [RawRecord(index=i, record=c) for i, c in enumerate(picked)]
    got = curate_source(SourceParams(name="bfcl_multi_turn"), Params().data, everything_trains, load=lambda _: raws)
    assert got.read == 4 and [r["case_id"] for r in got.rl] == ["multi_turn_base_0"]
    reasons = {r.record["id"]: (r.reason, r.detail) for r in got.rejected}
    assert reasons["multi_turn_miss_func_49"][0] == "unknown_tool"  # tail is called a turn before it arrives
    assert reasons["multi_turn_base_173"][0] == "type_mismatch"  # ticket_id='ticket_001' for an integer
    assert reasons["multi_turn_base_1"][0] == GROUND_TRUTH_ERROR and "cd" in reasons["multi_turn_base_1"][1]


def test_ground_truth_calls_are_read_without_eval(cases):
    env = BfclEnvironment(cases["multi_turn_base"][0])
    assert ground_truth_call("sort('final_report.pdf')", env) == ToolCall("sort", {"file_name": "final_report.pdf"})
    assert ground_truth_call("mv(source='a',destination='b')", env) == ToolCall("mv", {"source": "a",
                                                                                      "destination": "b"})
    for bad in ("__import__('os').system('true')", "ls(a=print('x'))", "rocket()", "mv('a')"):
        with pytest.raises(ValueError, match="ground-truth call"):
            ground_truth_call(bad, env)


def test_a_trajectory_reads_as_the_dialogue_renders_it(cases):
    case = cases["multi_turn_miss_func"][0]
    trajectory, messages = replay(case)
    roles = [m["role"] for m in messages]
    assert roles[:3] == ["system", "user", "assistant"] and roles[-1] == "assistant"
    steps = [s for t in trajectory.turns for s in t.steps]
    assert [m["content"] for m in messages if m["role"] == "assistant"] == [s.text for s in steps]
    added_turn = next(t for t in case.added_functions)
    assert trajectory.turns[added_turn].added_functions
    assert any("New tools you can use from now on" in m["content"] for m in messages if m["role"] == "user")


def _traj(category, calls_per_turn):
    turns = [Turn(user="u", steps=[*([Step("c", [ToolCall("f", {})] * n)] if n else []), Step("r")])
             for n in calls_per_turn]
    return Trajectory(case_id=f"{category}_0", category=category, turns=turns)


def test_card_counts_turns_and_calls():
    trajectories = [_traj("multi_turn_base", [1, 2, 0]), _traj("multi_turn_base", [3]),
                    _traj("multi_turn_miss_param", [0, 6])]
    stats = card.multi_turn_stats(trajectories, {"multi_turn_base": {"read": 4, "held_out": 2, "kept": 2,
                                                                     "quarantined": 0}},
                                  {"seed": 0, "eval_share": 0.5, "groups": 3, TRAIN: 2, EVAL: 2})
    every = stats["trajectories"]["all"]
    assert every["trajectories"] == 3
    assert every["turns_per_trajectory"] == {"mean": 2.0, "min": 1, "max": 3}
    assert every["calls_per_trajectory"] == {"mean": 4.0, "min": 3, "max": 6}
    assert every["calls_per_turn"] == {"mean": 2.0, "min": 0, "max": 6}
    assert every["calls_per_turn_histogram"] == {"0": 2, "1": 1, "2": 1, "3": 1, "4": 0, "5+": 1}
    assert stats["trajectories"]["multi_turn_base"]["calls_per_trajectory"] == {"mean": 3.0, "min": 3, "max": 3}
    assert stats["cases"]["multi_turn_miss_param"] == {}
    text = card.render_multi_turn(stats)
    assert "2 train / 2 held out for evaluation, in 3 groups" in text
    assert "| multi_turn_base | 2 | 2.0 (1-3) | 3.0 (3-3) | 1.5 (0-3) | 1 / 1 / 1 / 1 / 0 / 0 |" in text


def test_curated_card_has_the_multi_turn_section(curated):
    result, _ = curated
    assert "## Multi-turn (BFCL executable environments)" in result.card_markdown
    assert (result.output_dir / "multi_turn" / "split.json").exists()


def test_categories_are_checked_before_reading():
    bad = Params.model_validate({"data": {"sources": [{"name": "bfcl_multi_turn", "categories": ["simple_python"]}]}})
    with pytest.raises(ConfigError, match="not a BFCL multi-turn category"):
        curate(bad, track=False)
    wrong_source = Params.model_validate({"data": {"sources": [{"name": "bfcl", "categories": ["multi_turn_base"]}]}})
    with pytest.raises(ConfigError, match="bfcl_multi_turn source reads it"):
        curate(wrong_source, track=False)
    with pytest.raises(ValueError, match="cannot mask names"):
        SourceParams(name="bfcl_multi_turn", mask_tool_names=True)


def test_every_error_shape_of_bfcls_tools_counts_as_failed():
    from toolrl.data.bfcl_multi_turn import failed
    from toolrl.multiturn.environment import result_text

    # TradingBot answers a list, TicketAPI {"success": false}: both were read as calls that ran fine
    assert failed(result_text(["Error: User not authenticated. Please log in to view the watchlist."]))
    assert failed(result_text({"success": False})) and failed(result_text({"error": "no such file"}))
    assert failed("Error: there is no function named 'sort' here.")
    assert not any(failed(result_text(v)) for v in (["AAPL", "NVDA"], {"success": True}, [1, 2], "moved", {}))
