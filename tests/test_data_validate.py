"""Validation of target calls against tool schemas, and the conversion of upstream type names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolrl.data import validate
from toolrl.data.schema import Call, CanonicalExample, Message, Target, Tool
from toolrl.data.tool_schema import normalize_parameters, normalize_tools, type_schema

TOOL = Tool(name="book", description="Book a table.", parameters={
    "type": "object",
    "properties": {
        "people": {"type": "integer"},
        "time": {"type": "string"},
        "vip": {"type": "boolean"},
        "budget": {"type": "number"},
        "dishes": {"type": "array", "items": {"type": "string"}},
        "meta": {"type": "object", "properties": {"floor": {"type": "integer"}}},
        "note": {},
    },
    "required": ["people", "time"],
})


def example(*calls: Call, response: str | None = None) -> CanonicalExample:
    return CanonicalExample(id="t:0", source="t", tools=[TOOL], conversation=[Message(role="user", content="hi")],
                   target=Target(calls=list(calls), response=response))


def test_valid_call_passes():
    call = Call(name="book", arguments={"people": "4", "time": 19, "vip": "true", "budget": "12.5",
                                        "dishes": '["soup"]', "meta": {"floor": 2.0}, "note": [1, {"a": None}]})
    assert validate.check(example(call)) is None


@pytest.mark.parametrize("target, reason", [
    (example(), "empty_target"),
    (example(response="   "), "empty_target"),
    (example(Call(name="cancel", arguments={})), "unknown_tool"),
    (example(Call(name="book", arguments={"people": 2})), "missing_required_parameter"),
    (example(Call(name="book", arguments={"people": 2, "time": "7pm", "pets": 1})), "unknown_parameter"),
    (example(Call(name="book", arguments={"people": 2.5, "time": "7pm"})), "type_mismatch"),
    (example(Call(name="book", arguments={"people": 2, "time": {"h": 7}})), "type_mismatch"),
    (example(Call(name="book", arguments={"people": True, "time": "7pm"})), "type_mismatch"),
    (example(Call(name="book", arguments={"people": 2, "time": "7", "dishes": ["soup", {"x": 1}]})), "type_mismatch"),
    (example(Call(name="book", arguments={"people": 2, "time": "7", "meta": {"floor": "top"}})), "type_mismatch"),
    (example(Call(name="book", arguments={"people": None, "time": "7"})), "type_mismatch"),
])
def test_each_rule_has_its_reason(target, reason):
    problem = validate.check(target)
    assert problem is not None and problem[0] == reason and problem[1]


def test_null_for_an_optional_parameter_means_default():
    assert validate.check(example(Call(name="book", arguments={"people": 1, "time": "7", "vip": None}))) is None


def test_a_direct_answer_is_valid():
    assert validate.check(example(response="Sure.")) is None


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                    max_leaves=10))
def test_untyped_accepts_anything_and_integer_rejects_non_integers(value):
    assert validate.coercible(value, {})
    is_int = (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and value.is_integer())
    if not isinstance(value, str):
        assert validate.coercible(value, {"type": "integer"}) == is_int


@pytest.mark.parametrize("raw, schema, optional", [
    ("str", {"type": "string"}, False),
    ("str, optional", {"type": "string"}, True),
    ("int, optional", {"type": "integer"}, True),
    ("float", {"type": "number"}, False),
    ("List[int]", {"type": "array", "items": {"type": "integer"}}, False),
    ("List[List[float]]", {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}, False),
    ("Tuple[float, float]", {"type": "array"}, False),
    ("Optional[str]", {"type": "string"}, True),
    ("Union[int, float]", {"type": ["integer", "number"]}, False),
    ("Dict", {"type": "object"}, False),
    ("dict", {"type": "object"}, False),
    ("tuple", {"type": "array"}, False),
    ("any", {}, False),
    ("Callable[[float], float]", {}, False),
    ("bool, optional", {"type": "boolean"}, True),
    (["string", "null"], {"type": "string"}, True),
])
def test_type_names(raw, schema, optional):
    assert type_schema(raw) == (schema, optional)


def test_parameters_styles():
    flat = normalize_parameters({"a": {"type": "str"}, "b": {"type": "int, optional"}}, required_unless_optional=True)
    assert flat == {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
                    "required": ["a"]}
    assert normalize_parameters(None) == {"type": "object", "properties": {}, "required": []}
    with pytest.raises(ValueError, match="not among the properties"):
        normalize_parameters({"type": "dict", "properties": {"a": {"type": "string"}}, "required": ["b"]})


def test_tool_lists():
    same = {"name": "f", "description": "x", "parameters": {}}
    assert len(normalize_tools([same, same])) == 1  # identical repeats merge
    with pytest.raises(ValueError, match="two different tools"):
        normalize_tools([same, {**same, "description": "y"}])
    with pytest.raises(ValueError, match="no name"):
        normalize_tools([{"description": "nameless"}])
    wrapped = normalize_tools('[{"type": "function", "function": {"name": "g", "parameters": {"type": "object", '
                              '"properties": {"q": {"type": "string"}}, "required": ["q"]}}}]')
    assert wrapped[0].name == "g" and wrapped[0].parameters["required"] == ["q"]


def test_quoted_tags_are_defused_and_the_completion_parses_back():
    from toolrl.data.schema import clean_target

    quoted = example(Call(name="book", arguments={"people": 2, "time": "7"}))
    quoted = quoted.model_copy(update={"target": quoted.target.model_copy(
        update={"thought": "a <tool_call> to book fits, then </tool_call>"})})
    assert validate.check(quoted)[0] == "unrenderable_target"
    cleaned = clean_target(quoted)
    assert cleaned.target.thought == "a tool_call to book fits, then tool_call"
    assert validate.check(cleaned) is None
