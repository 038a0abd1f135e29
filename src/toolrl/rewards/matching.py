"""Correctness of predicted tool calls against the ground truth, as a raw score out of a maximum.

For ground-truth calls g_1..g_n the maximum is 1 + sum(1 + |params(g_i)|): one for the overlap of
the tool-name lists, and per ground-truth call one for its parameter-name overlap plus one per
parameter value. Each ground-truth call is matched to at most one predicted call of the same name.

Predicted calls are untrusted JSON. Where the reference scorer would hit an exception (a call that is
not an object or has no "name", an unhashable name, a matched call without a "parameters" object)
the whole block is `Malformed` and gets the correctness minimum, exactly when the reference does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from toolrl.rewards.parsing import GroundTruth, GtCall
from toolrl.rewards.registry import Variant
from toolrl.rewards.schema import values_equal


class Malformed(Exception):
    """Predicted calls the reference scorer could not score (it gives them the minimum)."""


def list_overlap(gt: list[Any], predicted: list[Any], exact: bool) -> float:
    """1 for equal lists; else 0 under `exact`; else the multiset overlap |A & B| / |A | B|."""
    if gt == predicted:
        return 1.0
    if exact or not gt or not predicted:
        return 0.0
    counts: dict[Any, int] = {}
    for x in gt:
        counts[x] = counts.get(x, 0) + 1
    common = 0
    try:
        for y in predicted:
            c = counts.get(y, 0)
            if c:
                counts[y] = c - 1
                common += 1
    except TypeError:  # an unhashable predicted name (a list or object)
        raise Malformed from None
    union = len(gt) + len(predicted) - common
    return common / union if union > 0 else 0.0


# (parameter name, ground-truth value, predicted value) -> equal? None stands for Python `==`, the
# reference's comparison, inlined because it runs for every parameter of every score.
ValueEq = Callable[[str, Any, Any], bool]
# {tool name: {parameter name: JSON schema}}, from toolrl.rewards.schema.tool_properties.
ToolIndex = dict[str, dict[str, Any]]


def value_eq(tools: ToolIndex | None, tool_name: str) -> ValueEq | None:
    """Typed comparison for the parameters of `tool_name` if `tools` describes it, else None (==)."""
    properties = tools.get(tool_name) if tools else None
    if not properties:
        return None

    def eq(key: str, gt: Any, predicted: Any) -> bool:
        return values_equal(gt, predicted, properties.get(key))

    return eq


def pair_score(g: GtCall, p: dict[str, Any], exact_lists: bool, eq: ValueEq | None) -> float:
    """Parameter-name overlap plus one per ground-truth value the predicted call matches."""
    params = p.get("parameters")
    if type(params) is not dict:
        raise Malformed
    keys = list_overlap(g.keys, list(params), exact_lists)
    values = 0.0
    if eq is None:
        for k, v in g.params.items():
            if k in params and params[k] == v:
                values += 1.0
    else:
        for k, v in g.params.items():
            if k in params and eq(k, v, params[k]):
                values += 1.0
    return keys + values


def _greedy(
    gt: GroundTruth, predicted: list[dict[str, Any]], variant: Variant, tools: ToolIndex | None, total: float
) -> float:
    """`total` plus, for each ground-truth call in order, the best-scoring unused predicted call (first
    on ties); a candidate must score above 0."""
    exact_lists, whole_calls = variant.lists == "exact", variant.calls == "exact"
    used = [False] * len(predicted)
    for g in gt.calls:
        eq = value_eq(tools, g.name) if tools else None
        best, best_i = 0.0, -1
        for i, p in enumerate(predicted):
            if used[i] or p["name"] != g.name:
                continue
            if whole_calls:
                if g.raw == p:
                    best, best_i = 1.0, i
                    break
                continue
            s = pair_score(g, p, exact_lists, eq)
            if s > best:
                best, best_i = s, i
        if best_i >= 0:
            used[best_i] = True
            total += best
    return total


def _optimal(
    gt: GroundTruth, predicted: list[dict[str, Any]], variant: Variant, tools: ToolIndex | None, total: float
) -> float:
    """`total` plus the one-to-one assignment of predicted to ground-truth calls with the highest sum."""
    exact_lists = variant.lists == "exact"
    scores = []
    for g in gt.calls:
        eq = value_eq(tools, g.name)
        scores.append([pair_score(g, p, exact_lists, eq) if p["name"] == g.name else 0.0 for p in predicted])
    if len(gt.calls) == 1 or len(predicted) == 1:  # one row or column: the best single cell
        return total + max(max(row) for row in scores)
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    matrix = np.array(scores, dtype=float)
    rows, cols = linear_sum_assignment(matrix, maximize=True)
    return total + float(matrix[rows, cols].sum())


def call_score(
    gt: GroundTruth, predicted: list[Any], variant: Variant, tools: ToolIndex | None = None
) -> tuple[float, float]:
    """(score, maximum) of the `predicted` calls (parsed JSON values); `tools` switches on typed value
    comparison for the tools it describes. Raises Malformed."""
    for p in predicted:
        if type(p) is not dict or "name" not in p:
            raise Malformed
    score = list_overlap(gt.names, [p["name"] for p in predicted], variant.lists == "exact")
    maximum = gt.exact_max if variant.calls == "exact" else gt.graded_max
    match = _optimal if variant.assignment == "optimal" else _greedy
    return match(gt, predicted, variant, tools, score), maximum
