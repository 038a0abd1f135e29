"""API-Bank in ToolRL's processed form: loading a level file, grading exact name + arguments."""

from __future__ import annotations

import json

import pytest

from toolrl.evaluation import api_bank
from toolrl.formats import ToolCall, render_completion

SYSTEM = ("You are a helpful multi-turn dialogue assistant ...\n**Available Tools**\n1. Name: AddAlarm\n"
          "Description: Add an alarm.\nParameters: {'token': {'type': 'str'}, 'time': {'type': 'str'}}")


def record(answer, user="<user> wake me at 7 </user>"):
    return {"system": SYSTEM, "user": f"***Dialogue Records History**\n{user}", "answer": answer,
            "other": {"file": "AddAlarm-level-2-1.jsonl", "id": 0}}


@pytest.fixture
def level_file(tmp_path):
    records = [
        record("{'name': 'AddAlarm', 'parameters': {'token': 'abc', 'time': '07:00:00'}}"),
        record({"name": "GetUserToken", "parameters": {"username": "admin", "password": "x"}}),  # parsed already
        record("[{'name': 'A', 'parameters': {}}, {'name': 'B', 'parameters': {'k': 1}}]"),
        record("{'name': 'AddAlarm', 'parameters': "),  # cut short: reported, left out
        {"system": SYSTEM, "answer": "{'name': 'X', 'parameters': {}}"},  # no user
        record("{'name': 'Last', 'parameters': {}}"),
    ]
    path = tmp_path / "level-2-api_processed.json"
    path.write_text(json.dumps(records))
    return path


def calls_text(*calls: ToolCall) -> str:
    return render_completion("calling", list(calls), None)


def test_load_level_uses_system_and_user_as_given(level_file):
    level = api_bank.load_level(level_file, None)
    assert level.name == "level_2"
    assert sorted(ex.id for ex in level.examples) == ["level_2_0", "level_2_1", "level_2_2", "level_2_5"]
    first = by_id(level)["level_2_0"]
    assert first.messages == [{"role": "system", "content": SYSTEM},
                              {"role": "user", "content": "***Dialogue Records History**\n<user> wake me at 7 </user>"}]
    assert first.gold["calls"] == [{"name": "AddAlarm", "arguments": {"token": "abc", "time": "07:00:00"}}]
    assert len(level.problems) == 2
    assert "record 3: answer is not a Python literal" in level.problems[0]
    assert "record 4: record has no string user" in level.problems[1]


def by_id(level):
    return {ex.id: ex for ex in level.examples}


def test_limit_draws_from_the_readable_records(level_file):
    """The seeded sample (tests/test_eval_sampling.py) is drawn among readable records only; the
    unreadable ones are reported whatever the limit."""
    everything, two = api_bank.load_level(level_file, None), api_bank.load_level(level_file, 2)
    assert [ex.id for ex in two.examples] == [ex.id for ex in everything.examples][:2]
    assert two.problems == everything.problems and len(two.problems) == 2


def test_grading_exact_name_and_arguments(level_file):
    cases = by_id(api_bank.load_level(level_file, None))
    ex, ex_parsed, ex_multi = cases["level_2_0"], cases["level_2_1"], cases["level_2_2"]
    gold = ToolCall("AddAlarm", {"token": "abc", "time": "07:00:00"})
    assert api_bank.grade(ex, calls_text(gold)).correct
    # Another call beside the gold one is fine: a predicted call matches.
    assert api_bank.grade(ex, calls_text(ToolCall("GetUserToken", {}), gold)).correct
    assert api_bank.grade(ex_parsed, calls_text(ToolCall("GetUserToken", {"username": "admin",
                                                                            "password": "x"}))).correct
    assert api_bank.grade(ex_multi, calls_text(ToolCall("B", {"k": 1}), ToolCall("A", {}))).correct

    wrong = {
        "wrong_args": calls_text(ToolCall("AddAlarm", {"token": "abc", "time": "7:00"})),
        "wrong_name": calls_text(ToolCall("AddReminder", gold.arguments)),
        "no_call": render_completion("no call", [], "Sure."),
        "bad_json": "<tool_call>\n{'name': 'AddAlarm'}\n</tool_call>",
        "unclosed_call": "<think> x </think>\n<tool_call>\n" + gold.to_json(),
    }
    for error, text in wrong.items():
        outcome = api_bank.grade(ex, text)
        assert not outcome.correct and outcome.error == error, (error, outcome)
    # Extra or missing argument, or a value of another type, is not "exactly the gold arguments".
    for args in ({"token": "abc"}, {**gold.arguments, "repeat": True}, {"token": "abc", "time": 7}):
        assert not api_bank.grade(ex, calls_text(ToolCall("AddAlarm", args))).correct
    assert not api_bank.grade(ex_multi, calls_text(ToolCall("A", {}))).correct


def test_missing_file_and_bad_json_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="evaluate.api_bank_paths"):
        api_bank.load_level(tmp_path / "level-1-api_processed.json", None)
    bad = tmp_path / "level-3.json"
    bad.write_text('{"system": "s"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        api_bank.load_level(bad, None)


def test_level_names():
    assert api_bank.level_name("x/level-1-api_processed.json") == "level_1"
    assert api_bank.level_name("x/my api-bank.json") == "my_api_bank"
