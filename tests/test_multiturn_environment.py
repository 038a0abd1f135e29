"""BFCL's executable environments: fresh state per rollout, every bad call a tool message."""

from __future__ import annotations

import pytest

from toolrl.formats import ToolCall
from toolrl.multiturn.cases import CATEGORIES, load_cases, scenario_of
from toolrl.multiturn.environment import BfclEnvironment, call_string
from toolrl.multiturn.trajectory import Step, Trajectory, Turn


@pytest.fixture(scope="module")
def file_case():
    return load_cases("multi_turn_base")[0]  # GorillaFileSystem + TwitterAPI, starts in workspace/


def test_every_category_loads_with_ground_truth_per_turn():
    for category in CATEGORIES:
        cases = load_cases(category)
        assert len(cases) == 200
        assert all(len(c.ground_truth) == len(c.turns) for c in cases)
        assert [c.scenario for c in cases] == list(range(200))
    miss = load_cases("multi_turn_miss_func")
    assert all(c.added_functions for c in miss)
    held = {f["name"] for fs in miss[0].added_functions.values() for f in fs}
    assert held and not held & {f["name"] for f in miss[0].functions}


def test_scenario_of_rejects_other_ids():
    assert scenario_of("multi_turn_long_context_17") == 17
    with pytest.raises(ValueError, match="not a BFCL multi-turn case id"):
        scenario_of("simple_python_3")


def test_calls_change_only_their_own_rollout(file_case):
    first, second = BfclEnvironment(file_case), BfclEnvironment(file_case)
    move = ToolCall("mv", {"source": "final_report.pdf", "destination": "renamed.pdf"})
    for env in (first, second):
        env.execute(ToolCall("cd", {"folder": "document"}))
        # the same move in a second rollout of the same case still finds the file: no shared state
        assert "moved" in env.execute(move)
    assert "final_report.pdf" not in first.execute(ToolCall("ls", {}))
    first.reset()
    first.execute(ToolCall("cd", {"folder": "document"}))
    assert "final_report.pdf" in first.execute(ToolCall("ls", {}))
    first.reset()
    # and the case itself (its initial state) was never touched
    assert BfclEnvironment(file_case).state() == first.state()


@pytest.mark.parametrize(("call", "says"), [
    (ToolCall("launch_rocket", {}), "there is no function named 'launch_rocket'"),
    (ToolCall("cd", {}), "wrong arguments for cd: missing a required argument: 'folder'"),
    (ToolCall("cd", {"folder": "workspace", "speed": 3}), "wrong arguments for cd"),
    (ToolCall("cd", {"folder": 7}), "Error during execution of cd"),
])
def test_bad_calls_become_messages(file_case, call, says):
    env = BfclEnvironment(file_case)
    before = env.state()
    message = env.execute(call)
    assert says in message
    assert env.state() == before


def test_long_context_bookings_change_only_their_own_rollout():
    # TravelAPI's long-context scenarios add cards and bookings that bfcl_eval keeps at module level: a
    # cancelled booking refunded the shared card, and the next rollout started from its balance.
    from bfcl_eval.eval_checker.multi_turn_eval.func_source_code import long_context

    case = next(c for c in load_cases("multi_turn_long_context") if c.involved_classes == ["TravelAPI"])
    card, booking = next(iter(long_context.CREDIT_CARD_EXTENSION)), next(iter(long_context.BOOKING_RECORD_EXTENSION))
    token = case.initial_config["TravelAPI"]["access_token"]
    balance = long_context.CREDIT_CARD_EXTENSION[card]["balance"]
    first = BfclEnvironment(case)
    assert "true" in first.execute(ToolCall("cancel_booking", {"access_token": token, "booking_id": booking}))
    assert first.instances["TravelAPI"].credit_card_list[card]["balance"] != balance
    assert long_context.CREDIT_CARD_EXTENSION[card]["balance"] == balance
    assert BfclEnvironment(case).instances["TravelAPI"].credit_card_list[card]["balance"] == balance


def test_a_call_that_would_compute_for_minutes_is_refused():
    import decimal

    case = next(c for c in load_cases("multi_turn_base") if "MathAPI" in c.involved_classes)
    env = BfclEnvironment(case)
    slow = ToolCall("square_root", {"number": 2, "precision": 100_000_000})
    assert "precision=100000000 is too large for square_root" in env.execute(slow)
    assert env.refusal(slow) is not None
    precision = decimal.getcontext().prec
    assert "1.41" in env.execute(ToolCall("square_root", {"number": 2, "precision": 50}))
    assert decimal.getcontext().prec == precision  # MathAPI sets it process-wide; the call ran in a local context


def test_held_out_functions_arrive_at_their_turn():
    case = load_cases("multi_turn_miss_func")[0]
    turn, docs = next(iter(case.added_functions.items()))
    name = docs[0]["name"]
    env = BfclEnvironment(case)
    assert "there is no function named" in env.execute(ToolCall(name, {}))
    assert env.refusal(ToolCall(name, {})) is not None
    assert [d["name"] for d in env.open_turn(turn)] == [name]
    assert "there is no function named" not in env.execute(ToolCall(name, {}))


def test_decoded_calls_are_what_bfcl_executes(file_case):
    call = ToolCall("mv", {"source": "it's.pdf", "destination": "temp"})
    assert call_string(call) == "mv(source=\"it's.pdf\",destination='temp')"
    trajectory = Trajectory(file_case.id, file_case.category, turns=[
        Turn("move it", steps=[Step("...", calls=[call], results=["ok"]), Step("<response> done </response>")]),
        Turn("next"),
    ])
    assert trajectory.decoded() == [[[call_string(call)]], []]
    # a call the environment refused (not offered yet, the call limit) is not replayed by the checker
    refused = Trajectory(file_case.id, file_case.category, turns=[Turn("move it", steps=[
        Step("...", calls=[ToolCall("sort", {}), call], results=["Error: no", "ok"], refused=[True, False]),
        Step("...", calls=[ToolCall("sort", {})], results=["Error: no"], refused=[True])])])
    assert refused.decoded() == [[[call_string(call)]]]
    assert Trajectory.from_dict(refused.to_dict()) == refused
    assert trajectory.turns_completed == 1
    assert Trajectory.from_dict(trajectory.to_dict()) == trajectory
    with pytest.raises(ValueError, match="not a trajectory record"):
        Trajectory.from_dict({"turns": []})


@pytest.mark.parametrize(("line", "says"), [
    ('{"name": "f", "parameters": {"x": ' + "[" * 1000 + "]" * 1000 + "}}", "nests deeper than"),
    ('{"name": "f", "parameters": {"x": ' + "[" * 40 + "]" * 40 + "}}", "nests deeper than"),
    ('{"name": "set_budget_limit", "parameters": {"budget_limit": Infinity}}', "Infinity is not a JSON number"),
    ('{"name": "f", "parameters": {"x": NaN}}', "NaN is not a JSON number"),
])
def test_absurd_call_lines_are_parse_errors_not_crashes(line, says):
    # json.loads raises RecursionError ~1,000 levels deep, and 600 levels broke dataclasses.asdict of the
    # trajectory later; non-finite numbers ran in the environment but not in BFCL's checker.
    from toolrl import formats

    parsed = formats.parse(f"<tool_call>\n{line}\n</tool_call>")
    assert not parsed.calls and says in parsed.error
    assert formats.parse_call('{"name": "f", "parameters": {"x": [[1, 2], {"y": [3]}]}}').arguments["x"][1] == {"y": [3]}
