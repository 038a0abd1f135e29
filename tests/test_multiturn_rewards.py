"""Multi-turn rewards and grading: BFCL's multi-turn checker as the outcome, ToolRL's format and
correctness per message and turn as the dense reward, the TRL functions and `toolrl reward trajectories`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from toolrl.config import ConfigError, RewardParams
from toolrl.evaluation import multi_turn as grading
from toolrl.evaluation.bfcl import CheckerBroken
from toolrl.evaluation.multi_turn import grade_trajectory
from toolrl.formats import ToolCall, render_completion
from toolrl.multiturn.answers import case_by_id, ground_truth_calls, parse_call_string
from toolrl.multiturn.trajectory import STEP_LIMIT, Step, Trajectory, Turn
from toolrl.rewards import score
from toolrl.rewards.cli import app
from toolrl.rewards.multi_turn import TrajectoryScorer
from toolrl.rewards.trl import multi_turn_reward_functions, multi_turn_reward_weights

ANSWER = render_completion("the user's request is done", [], "Done.")  # a message that ends a turn


def calling(calls: list[ToolCall]) -> Step:
    return Step(render_completion("call the tools", calls, None), calls=list(calls), results=["ok"] * len(calls))


def ground_truth_trajectory(case, per_turn=None) -> Trajectory:
    """The ground truth's calls, one message per turn (or `per_turn[i]`'s messages), then an answer."""
    turns = []
    for i, calls in enumerate(per_turn or ground_truth_calls(case)):
        groups = calls if calls and isinstance(calls[0], list) else ([calls] if calls else [])
        turns.append(Turn(case.user_text(i), steps=[calling(g) for g in groups] + [Step(ANSWER)]))
    return Trajectory(case.id, case.category, turns=turns)


def edited(case, turn: int, calls: list[ToolCall]) -> Trajectory:
    per_turn = [list(t) for t in ground_truth_calls(case)]
    per_turn[turn] = calls
    return ground_truth_trajectory(case, per_turn)


@pytest.fixture(scope="module")
def base():
    return case_by_id("multi_turn_base_0")  # files: cd, mkdir, mv in turn 0; four turns, all with calls


@pytest.fixture(scope="module")
def scorer():
    return TrajectoryScorer("outcome_dense")


# ---------------------------------------------------------------- ground truth scores full


@pytest.mark.parametrize("case_id", ["multi_turn_base_0", "multi_turn_base_7", "multi_turn_miss_func_0",
                                     "multi_turn_miss_param_3", "multi_turn_long_context_1"])
def test_the_ground_truth_passes_and_scores_full(case_id, scorer):
    case = case_by_id(case_id)
    trajectory = ground_truth_trajectory(case)
    assert grade_trajectory(case, trajectory).correct
    s = scorer(trajectory)
    assert (s.outcome, s.format, s.correctness, s.total, s.error) == (3.0, 1.0, 3.0, 7.0, None)
    # the dict form (trajectory files, TRL's `trajectory` field) scores the same
    assert scorer(trajectory.to_dict()) == s


def test_ground_truth_calls_name_positional_arguments(base):
    assert ground_truth_calls(base)[2] == [ToolCall("sort", {"file_name": "final_report.pdf"})]
    assert parse_call_string("mv(source='a',destination='b')", base.involved_classes) == \
        ToolCall("mv", {"source": "a", "destination": "b"})
    for text, says in [("__import__('os').system('x')", "plain function name"),
                       ("cd(folder=open('x'))", "not a literal"), ("cd(", "not Python syntax"),
                       ("nope('x')", "no method nope")]:
        with pytest.raises(ValueError, match=says):
            parse_call_string(text, base.involved_classes)


# ---------------------------------------------------------------- outcome


def test_a_wrong_state_fails_the_outcome(base, scorer):
    calls = [ToolCall("cd", {"folder": "document"}), ToolCall("mkdir", {"dir_name": "temp"}),
             ToolCall("mv", {"source": "final_report.pdf", "destination": "archive"})]  # wrong destination
    grade = grade_trajectory(base, edited(base, 0, calls))
    assert (grade.correct, grade.error) == (False, "state_mismatch")
    assert "GorillaFileSystem" in grade.detail
    s = scorer(edited(base, 0, calls))
    assert s.outcome == 0.0 and s.error == "state_mismatch" and 0.0 < s.correctness < 3.0


def test_grading_the_same_case_again_starts_from_its_initial_state(base):
    _, utils = grading.official_checker()
    before = set(vars(utils))
    wrong = edited(base, 0, [ToolCall("cd", {"folder": "document"}), ToolCall("mkdir", {"dir_name": "temp"}),
                             ToolCall("mv", {"source": "final_report.pdf", "destination": "temp2"})])
    right = ground_truth_trajectory(base)
    # BFCL's executor would reuse the first grading's instances for the second under one model name
    assert [grade_trajectory(base, t).correct for t in (wrong, right, wrong, right)] == [False, True, False, True]
    assert set(vars(utils)) == before  # every grading's instances were deleted


def test_a_conversation_stopped_before_the_last_turn_is_force_terminated(base):
    trajectory = ground_truth_trajectory(base)
    trajectory.turns = trajectory.turns[:2] + [Turn("never reached"), Turn("never reached")]
    trajectory.stop = STEP_LIMIT
    grade = grade_trajectory(base, trajectory)
    assert (grade.correct, grade.error, grade.checked) == (False, "force_terminated", False)
    assert "after 2 of 4 turns" in grade.detail


def test_a_turn_that_needed_calls_and_got_none_is_an_empty_turn(base):
    grade = grade_trajectory(base, edited(base, 1, []))
    assert (grade.correct, grade.error) == (False, "empty_turn")


def test_model_written_names_never_reach_python_builtins(base, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    trajectory = ground_truth_trajectory(base)
    trajectory.turns[0].steps.insert(0, calling([
        ToolCall("open", {"file": str(victim), "mode": "w"}),  # would truncate the file if evaluated
        ToolCall("cd", {"folder='x'),open(file='" + str(victim) + "',mode='w'),print(x": 1}),  # key injection
    ]))
    decoded = grading.safe_decoded(trajectory, base.involved_classes)
    assert decoded[0][0] == [grading.UNKNOWN_CALL, grading.UNKNOWN_CALL]
    grade_trajectory(base, trajectory)
    assert victim.read_text() == "keep me"


def test_a_checker_crash_is_counted_not_raised(base, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyError("initial_config")

    _, utils = grading.official_checker()
    monkeypatch.setattr(grading, "official_checker", lambda: (crash, utils))
    grade = grade_trajectory(base, ground_truth_trajectory(base))
    assert (grade.correct, grade.error, grade.checked) == (False, "checker_error", True)
    scorer = TrajectoryScorer("outcome_dense")
    s = scorer(ground_truth_trajectory(base))
    assert (s.outcome, s.error, scorer.checker_errors) == (0.0, "checker_error", 1)
    assert s.format == 1.0 and s.correctness == 3.0  # the dense terms do not need the checker
    outcome_reward = multi_turn_reward_functions(RewardParams())[0]
    with pytest.raises(CheckerBroken, match="every one of the 2 trajectories"):
        outcome_reward(trajectory=[ground_truth_trajectory(base).to_dict()] * 2)


# ---------------------------------------------------------------- dense


def test_a_missing_call_lowers_correctness_as_single_turn_toolrl_would(base, scorer):
    cd, mkdir, mv = ground_truth_calls(base)[0]
    s = scorer(edited(base, 0, [cd, mkdir]))
    # turn 0 alone, as ToolRL scores it: names 2/3 + (1 + 1) + (1 + 1) of 8, so 6 * 4.667 / 8 - 3 = 0.5
    single = score(render_completion("t", [cd, mkdir], None), render_completion("t", [cd, mkdir, mv], None))
    assert single.correctness == pytest.approx(0.5)
    assert s.correctness == pytest.approx((0.5 + 3 * 3.0) / 4)  # mean over the four turns
    assert s.format == 1.0


def test_an_extra_wrong_call_lowers_correctness_only(base, scorer):
    extra = [*ground_truth_calls(base)[0], ToolCall("rm", {"file_name": "no_such_file.txt"})]
    s = scorer(edited(base, 0, extra))
    # names 3/4 + 2 + 2 + 3 of 8: 6 * 7.75 / 8 - 3 = 2.8125; the failed rm changes no state: outcome kept
    assert s.correctness == pytest.approx((2.8125 + 3 * 3.0) / 4)
    assert (s.outcome, s.format) == (3.0, 1.0)


def test_a_badly_formatted_message_lowers_format_only(base, scorer):
    trajectory = ground_truth_trajectory(base)
    trajectory.turns[1].steps[0].text = trajectory.turns[1].steps[0].text.replace("<think>", "")  # 1 of 8 messages
    s = scorer(trajectory)
    assert (s.format, s.correctness, s.outcome) == (7 / 8, 3.0, 3.0)


def test_calls_spread_over_messages_are_matched_per_turn(base, scorer):
    cd, mkdir, mv = ground_truth_calls(base)[0]
    per_turn = [[[cd], [mkdir], [mv]], *ground_truth_calls(base)[1:]]
    s = scorer(ground_truth_trajectory(base, per_turn))
    assert (s.outcome, s.format, s.correctness) == (3.0, 1.0, 3.0)


def test_calling_in_a_turn_that_should_only_ask_costs_format():
    case = case_by_id("multi_turn_miss_func_0")
    empty = next(i for i, t in enumerate(ground_truth_calls(case)) if not t)
    trajectory = edited(case, empty, [ToolCall("ls", {})])
    s = TrajectoryScorer("dense")(trajectory)
    messages = sum(len(t.steps) for t in trajectory.turns)
    assert s.format == pytest.approx((messages - 1) / messages) and s.correctness == 3.0 and s.outcome == 0.0


def test_unreached_turns_score_the_correctness_minimum(base):
    trajectory = ground_truth_trajectory(base)
    trajectory.turns = trajectory.turns[:2]
    trajectory.stop = STEP_LIMIT
    s = TrajectoryScorer("dense")(trajectory)
    assert s.correctness == pytest.approx((3.0 + 3.0 - 3.0 - 3.0) / 4) and s.format == 1.0


def test_variant_ranges_weights_and_outcome_range_apply(base):
    params = RewardParams(variant="equal_max", weights={"outcome": 2.0, "format": 0.5}, outcome_max=5.0)
    s = TrajectoryScorer(params=params)(ground_truth_trajectory(base))
    assert (s.outcome, s.format, s.correctness, s.total) == (5.0, 1.0, 1.0, 2 * 5.0 + 0.5 + 1.0)
    assert multi_turn_reward_weights(params) == [2.0, 0.5, 1.0]
    assert TrajectoryScorer("outcome").components == ("outcome",)
    with pytest.raises(ConfigError, match="length reward"):
        TrajectoryScorer("dense", RewardParams(variant="length"))
    with pytest.raises(ValueError, match="unknown multi-turn reward 'nope'"):
        RewardParams(multi_turn="nope")


def test_trl_functions_read_the_trajectory_field_and_score_a_batch_once(base, monkeypatch):
    functions = multi_turn_reward_functions(RewardParams())
    assert [f.__name__ for f in functions] == ["outcome_reward", "format_reward", "correctness_reward"]
    batch = [ground_truth_trajectory(base).to_dict(), edited(base, 1, []).to_dict()]
    calls = []
    real = grading.grade_trajectory
    monkeypatch.setattr(grading, "grade_trajectory", lambda *a: calls.append(a) or real(*a))
    logged = []
    values = [f(prompts=[], completions=[], trajectory=batch, trainer_state=None,
                log_metric=lambda *a: logged.append(a)) for f in functions]
    assert values[0] == [3.0, 0.0] and values[1] == [1.0, 1.0] and values[2][0] == 3.0 > values[2][1]
    assert len(calls) == 2  # the checker ran once per trajectory, not once per function
    assert logged == [("multi_turn/checker_errors", 0.0)]
    with pytest.raises(ValueError, match="needs a `trajectory` field"):
        functions[0](prompts=[], completions=[])


# ---------------------------------------------------------------- the CLI


def test_cli_scores_a_trajectory_file_and_reports_bad_lines(base, tmp_path):
    good, wrong = ground_truth_trajectory(base).to_dict(), edited(base, 1, []).to_dict()
    unknown = {**good, "case_id": "multi_turn_base_999"}
    lines = [json.dumps(good), json.dumps(wrong), "{not json", "", json.dumps(unknown),
             json.dumps({"case_id": base.id}), json.dumps([1, 2])]
    src, dst = tmp_path / "traj.jsonl", tmp_path / "out" / "scored.jsonl"
    src.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, ["trajectories", "--input", str(src), "--output", str(dst)])
    assert result.exit_code == 1, result.output
    out = result.output
    assert "traj.jsonl:3: not valid JSON" in out
    assert "traj.jsonl:5: unknown BFCL multi-turn case id 'multi_turn_base_999'" in out
    assert "traj.jsonl:6: not a trajectory record" in out
    assert "traj.jsonl:7: a line must be a JSON object" in out
    assert "2 trajectories" in out and "checker passed 1/2" in out and "empty_turn" in out
    assert "4 bad line(s)" in out
    written = [json.loads(x) for x in dst.read_text().splitlines()]
    assert written[0]["scores"]["total"] == 7.0 and written[1]["scores"]["outcome"] == 0.0
    assert [w["scores"] is None for w in written] == [False, False, True, True, True, True]


def test_cli_reward_option_and_a_clean_file(base, tmp_path):
    src = tmp_path / "traj.jsonl"
    src.write_text(json.dumps(ground_truth_trajectory(base).to_dict()) + "\n")
    result = CliRunner().invoke(app, ["trajectories", "-i", str(src), "--reward", "outcome"])
    assert result.exit_code == 0, result.output
    assert "reward outcome" in result.output and "checker passed 1/1" in result.output
    result = CliRunner().invoke(app, ["trajectories", "-i", str(src), "--reward", "nope"])
    assert result.exit_code != 0 and "unknown multi-turn reward 'nope'" in result.output


def test_grading_a_long_context_booking_leaves_bfcls_shared_records_alone():
    # TravelAPI's long-context cards and bookings are module-level dicts in bfcl_eval that the checker's
    # instances shared: a graded cancellation refunded the shared card (5000 -> 5400 -> 5800 over gradings).
    from bfcl_eval.eval_checker.multi_turn_eval.func_source_code import long_context

    from toolrl.multiturn.cases import load_cases

    case = next(c for c in load_cases("multi_turn_long_context") if c.involved_classes == ["TravelAPI"])
    card, booking = next(iter(long_context.CREDIT_CARD_EXTENSION)), next(iter(long_context.BOOKING_RECORD_EXTENSION))
    balance = long_context.CREDIT_CARD_EXTENSION[card]["balance"]
    per_turn = [list(t) for t in ground_truth_calls(case)]
    per_turn[0] += [ToolCall("cancel_booking", {"access_token": case.initial_config["TravelAPI"]["access_token"],
                                                "booking_id": booking})]
    assert grade_trajectory(case, ground_truth_trajectory(case, per_turn)).error == "state_mismatch"
    assert long_context.CREDIT_CARD_EXTENSION[card]["balance"] == balance
    assert booking in long_context.BOOKING_RECORD_EXTENSION
    assert grade_trajectory(case, ground_truth_trajectory(case)).correct
