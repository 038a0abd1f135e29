"""The two variants beyond the reference, on cases where they disagree with it, and why they are right.

schema_match: values compared after coercion to the parameter's declared type (the tools reach the
scorer as the `tools` argument / dataset column). optimal_match: Hungarian assignment of predicted
to ground-truth calls instead of greedy first-best in ground-truth order.
"""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolrl.rewards import Scorer, ToolsError, score
from toolrl.rewards.schema import tool_properties, values_equal


def call(name: str, **params) -> str:
    return json.dumps({"name": name, "parameters": params})


def block(*lines: str) -> str:
    return "<think> t </think>\n<tool_call>\n" + "\n".join(lines) + "\n</tool_call>"


def tool(name: str, **props) -> dict:
    return {"name": name, "description": "", "parameters": {"type": "object", "properties": props}}


NEWS = [tool("GetNews", page={"type": "integer"}, query={"type": "string"})]
INVEST = [tool("invest", amount={"type": "number"}, years={"type": "integer"}, compound={"type": "boolean"},
               unit={"type": "string", "enum": ["celsius", "fahrenheit"]}, city={"type": "string"},
               tags={"type": "array", "items": {"type": "integer"}})]


# ---------------------------------------------------------------- schema-aware values


def test_stringly_typed_ground_truth_no_longer_punishes_the_schema_following_model():
    # ToolRL's data writes {"page": "1"} where the tool declares an integer. A model that follows the
    # schema and emits 1 gets the value wrong under Python ==: s = names 1 + keys 1 + 0 of M = 3.
    gt, pd = block(call("GetNews", page="1")), block(call("GetNews", page=1))
    assert score(pd, gt).correctness == pytest.approx(6 * 2 / 3 - 3)  # 1.0
    assert score(pd, gt, variant="schema_match", tools=NEWS).correctness == 3.0
    # both the typed value and the ground truth's own spelling are right
    assert score(gt, gt, variant="schema_match", tools=NEWS).correctness == 3.0


def test_true_is_not_an_integer():
    # Python's True == 1 makes the reference accept a boolean for an integer parameter (even as an
    # exact match); JSON Schema says a boolean is not an integer, and an API would reject it.
    gt, pd = block(call("GetNews", page=1)), block(call("GetNews", page=True))
    assert score(pd, gt).correctness == 3.0
    assert score(pd, gt, variant="schema_match", tools=NEWS).correctness == pytest.approx(1.0)


@pytest.mark.parametrize(
    "gt_value,pd_value,key,reference_equal,schema_equal",
    [
        (0.30000000000000004, 0.3, "amount", False, True),  # decimal text of 0.1 + 0.2
        ("2.50", 2.5, "amount", False, True),
        (5, "5", "years", False, True),
        (5, 5.0, "years", True, True),
        (5, "5.5", "years", False, False),
        ("True", True, "compound", False, True),  # ToolRL data writes booleans as "True"
        (True, "false", "compound", False, False),
        (True, 1, "compound", True, False),  # 1 is not a boolean either
        ("celsius", "Celsius", "unit", False, True),  # an enum label: case is convention
        ("Paris", "paris", "city", False, False),  # a free string: case may matter to the API
        ("Paris", " Paris ", "city", False, True),  # surrounding whitespace never does
        ("5", 5, "city", False, False),  # a number is not a string
        ([1, 2], ["1", 2.0], "tags", False, True),  # element-wise with the items schema
        ([1, 2], [2, 1], "tags", False, False),  # order of an array matters
    ],
)
def test_typed_values(gt_value, pd_value, key, reference_equal, schema_equal):
    props = tool_properties(INVEST)["invest"]
    assert values_equal(gt_value, pd_value, props[key]) is schema_equal
    assert (pd_value == gt_value) is reference_equal
    gt, pd = block(call("invest", **{key: gt_value})), block(call("invest", **{key: pd_value}))
    # one parameter: M = 3; names 1 + keys 1 + value (0 or 1)
    expected = 3.0 if schema_equal else 6 * 2 / 3 - 3
    assert score(pd, gt, variant="schema_match", tools=INVEST).correctness == pytest.approx(expected)


def test_without_tools_schema_match_is_the_reference():
    cases = [
        (block(call("GetNews", page="1")), block(call("GetNews", page=1))),
        (block(call("GetNews", page=1)), block(call("GetNews", page=True))),
        (block(call("a", x=1), call("b", y=2)), block(call("b", y=2), call("a", x="1"), call("c"))),
        (block(call("a", x=1)), "<think> t </think>\n<tool_call>\n[1]\n</tool_call>"),
        ("<think> t </think>\n<response> r </response>", block(call("a"))),
    ]
    for gt, pd in cases:
        for step in (0, 50):
            assert score(pd, gt, variant="schema_match", step=step) == score(pd, gt, step=step)
            # a tool the schema does not describe falls back too
            assert score(pd, gt, variant="schema_match", tools=INVEST) == score(pd, gt)


def test_tools_forms():
    as_openai = [{"type": "function", "function": NEWS[0]}]
    datasets_struct = [{"name": "GetNews", "parameters": {"type": "object", "properties": {
        "page": {"type": "integer"}, "other_tools_param": None}}}]
    gt, pd = block(call("GetNews", page="1")), block(call("GetNews", page=1))
    for tools in (NEWS, json.dumps(NEWS), as_openai, datasets_struct, NEWS[0]):
        assert score(pd, gt, variant="schema_match", tools=tools).correctness == 3.0
    for bad in ("not json", 42, [{"description": "no name"}]):
        with pytest.raises(ToolsError):
            score(pd, gt, variant="schema_match", tools=bad)


# ---------------------------------------------------------------- optimal assignment

GT_TWO_F = block(call("f", a=1), call("f", a=1, b=2))  # M = 1 + (1 + 1) + (1 + 2) = 6
PD_ORDER_1 = [call("f", a=1, b=2), call("f", a=1, c=5)]


def test_greedy_depends_on_the_order_of_parallel_calls_optimal_does_not():
    # Greedy, ground-truth order: f(a=1) ties at 1.5 with both predictions and takes the first,
    # f(a=1, b=2). The second ground-truth call is left with f(a=1, c=5): keys 1/3 + a = 4/3.
    # s = 1 + 1.5 + 4/3. Listing the same two calls the other way round, greedy gives f(a=1) the
    # f(a=1, c=5) and f(a=1, b=2) its exact match: s = 1 + 1.5 + 3. The same answer scores
    # differently by the order of calls that run in parallel; the optimal assignment always finds
    # the second pairing.
    forward, backward = block(*PD_ORDER_1), block(*reversed(PD_ORDER_1))
    greedy_fwd = score(forward, GT_TWO_F).correctness
    greedy_bwd = score(backward, GT_TWO_F).correctness
    assert greedy_fwd == pytest.approx(6 * (1 + 1.5 + 4 / 3) / 6 - 3)
    assert greedy_bwd == pytest.approx(6 * (1 + 1.5 + 3) / 6 - 3)
    best = 6 * (1 + 1.5 + 3) / 6 - 3
    assert score(forward, GT_TWO_F, variant="optimal_match").correctness == pytest.approx(best)
    assert score(backward, GT_TWO_F, variant="optimal_match").correctness == pytest.approx(best)


def test_optimal_is_invariant_to_permutations_of_predicted_calls():
    gt = block(call("f", a=1), call("g", x="y"), call("f", a=1, b=2))
    pd = [call("f", a=1, b=2), call("f", a=1, c=5), call("g", x="z"), call("h"), call("f", a=2)]
    scores = {round(score(block(*p), gt, variant="optimal_match").correctness, 12)
              for p in itertools.permutations(pd)}
    assert len(scores) == 1
    greedy = {round(score(block(*p), gt).correctness, 12) for p in itertools.permutations(pd)}
    assert len(greedy) > 1 and max(greedy) <= scores.pop() + 1e-12


calls_st = st.lists(
    st.builds(lambda n, ps: json.dumps({"name": n, "parameters": ps}), st.sampled_from("fg"),
              st.dictionaries(st.sampled_from("abc"), st.integers(0, 2), max_size=3)),
    min_size=1, max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(gt_calls=calls_st, pd_calls=calls_st)
def test_optimal_never_scores_below_greedy_and_agrees_on_exact_answers(gt_calls, pd_calls):
    gt, pd = block(*gt_calls), block(*pd_calls)
    greedy, optimal = Scorer("default")(pd, gt), Scorer("optimal_match")(pd, gt)
    assert optimal.correctness >= greedy.correctness - 1e-9
    assert Scorer("optimal_match")(gt, gt).correctness == 3.0


def test_schema_and_optimal_together():
    gt = block(call("GetNews", page="1"), call("GetNews", page="2", query="x"))
    pd = block(call("GetNews", page=2, query="x"), call("GetNews", page=1))
    s = score(pd, gt, variant="schema_optimal_match", tools=NEWS)
    assert s.correctness == 3.0
    assert score(pd, gt).correctness < s.correctness
