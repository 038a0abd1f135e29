"""A case's ground truth as calls: BFCL's call strings (`mv(source='a',destination='b')`) read with `ast`.

BFCL's executor runs these strings with `eval`; the dense reward needs them as `ToolCall`s (a name and
keyword arguments) to match them against the model's calls. They are parsed, never evaluated: the
function must be a plain name, every argument a literal (`ast.literal_eval`). A positional argument
(`sort('final_report.pdf')`, a few hundred in BFCL's data) takes its name from the method's signature,
the method BFCL's executor would bind the name to (the last involved class that has it).
"""

from __future__ import annotations

import ast
import functools
import inspect

from toolrl.formats import ToolCall
from toolrl.multiturn.cases import CATEGORIES, MultiTurnCase, load_cases


@functools.cache
def _parameters(classes: tuple[str, ...]) -> dict[str, list[str]]:
    """{method name: its parameter names, self left out} over these BFCL classes, later classes winning."""
    from toolrl.multiturn.environment import _class_of

    out = {}
    for name in classes:
        for method, fn in inspect.getmembers(_class_of(name), inspect.isfunction):
            if not method.startswith("_"):
                out[method] = [p for p in inspect.signature(fn).parameters if p != "self"]
    return out


def parse_call_string(text: str, classes: list[str] | tuple[str, ...]) -> ToolCall:
    """One BFCL call string as a ToolCall. Raises ValueError saying what is not a plain literal call."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"BFCL call {text!r} is not Python syntax: {exc.msg}") from None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ValueError(f"BFCL call {text!r} is not a call of a plain function name")
    name = node.func.id
    arguments = {}
    if node.args:
        params = _parameters(tuple(classes)).get(name)
        if params is None or len(node.args) > len(params):
            raise ValueError(f"BFCL call {text!r}: positional arguments, and no method {name} of "
                             f"{', '.join(classes)} to name them")
        for param, value in zip(params, node.args, strict=False):
            arguments[param] = _literal(value, text)
    for kw in node.keywords:
        if kw.arg is None:
            raise ValueError(f"BFCL call {text!r} unpacks keyword arguments (**)")
        arguments[kw.arg] = _literal(kw.value, text)
    return ToolCall(name, arguments)


def _literal(node: ast.expr, text: str):
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"BFCL call {text!r} has an argument that is not a literal: "
                         f"{ast.unparse(node)[:80]}") from None


_CALLS: dict[str, list[list[ToolCall]]] = {}


def ground_truth_calls(case: MultiTurnCase) -> list[list[ToolCall]]:
    """Per user turn, the ground truth's calls (parsed once per case id)."""
    calls = _CALLS.get(case.id)
    if calls is None:
        calls = _CALLS[case.id] = [[parse_call_string(s, case.involved_classes) for s in turn]
                                   for turn in case.ground_truth]
    return calls


@functools.cache
def _category_cases(category: str) -> dict[str, MultiTurnCase]:
    return {c.id: c for c in load_cases(category)}


def case_by_id(case_id: str) -> MultiTurnCase:
    """The BFCL multi-turn case with this id (its category loaded once). Raises ValueError."""
    category = case_id.rpartition("_")[0] if isinstance(case_id, str) else ""
    if category not in CATEGORIES:
        raise ValueError(f"unknown BFCL multi-turn case id {case_id!r}: expected multi_turn_<category>_<n> "
                         f"with category one of {', '.join(c.removeprefix('multi_turn_') for c in CATEGORIES)}")
    cases = _category_cases(category)
    if case_id not in cases:
        raise ValueError(f"unknown BFCL multi-turn case id {case_id!r}: {category} has cases 0 to {len(cases) - 1}")
    return cases[case_id]
