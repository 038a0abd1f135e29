"""Which BFCL multi-turn scenarios train and which are held out for evaluation: one answer for both.

A scenario is an index shared by four cases (base, miss_func, miss_param, long_context), so the
split is by scenario, never by case: training on `multi_turn_miss_param_7` and evaluating on
`multi_turn_base_7` would score a conversation the model has already learnt. Some scenarios are
closer still to each other: a few share an initial state (the file system of 66, 70 and 74 is one),
two open with the same request (40 and 43). Scenarios joined by a shared initial_config (in any
category) or a shared first user turn form one group (union-find), and whole groups are assigned.

Groups are ranked by a hash of (seed, the group's smallest scenario) and taken for evaluation in
that order until `eval_share` of the scenarios are held out (a group never splits, so the share
can be passed by a group's size less one). The assignment depends only on BFCL's cases, the seed
and the share: the curate stage and the evaluate stage call `scenario_split(params.multi_turn)` and
get the same split.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from toolrl.multiturn.cases import CATEGORIES, MultiTurnCase, load_cases, scenario_of
from toolrl.schema.multi_turn import MultiTurnParams

TRAIN, EVAL = "train", "eval"


def config_key(case: MultiTurnCase) -> str:
    """The initial state as comparable text (key order does not matter)."""
    return json.dumps(case.initial_config, sort_keys=True, ensure_ascii=False)


def first_turn_key(case: MultiTurnCase) -> str:
    """The opening request, with case and spacing evened out."""
    return " ".join(case.user_text(0).lower().split())


def scenario_groups(cases: Iterable[MultiTurnCase]) -> list[list[int]]:
    """Scenarios that share an initial state or a first user turn with one another, as sorted groups."""
    parent: dict[int, int] = {}

    def find(s: int) -> int:
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    first_seen: dict[tuple[str, str], int] = {}
    for case in cases:
        parent.setdefault(case.scenario, case.scenario)
        for key in (("config", config_key(case)), ("first_turn", first_turn_key(case))):
            other = first_seen.setdefault(key, case.scenario)
            a, b = find(other), find(case.scenario)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for s in sorted(parent):
        groups.setdefault(find(s), []).append(s)
    return sorted(groups.values())


def _rank(seed: int, group: list[int]) -> str:
    return hashlib.sha256(f"{seed}:multi_turn:{group[0]}".encode()).hexdigest()


def assign_groups(groups: list[list[int]], seed: int, eval_share: float) -> dict[int, str]:
    """scenario -> TRAIN or EVAL; whole groups, in hash order, to evaluation until the share is met."""
    target = round(eval_share * sum(len(g) for g in groups))
    out: dict[int, str] = {}
    held = 0
    for group in sorted(groups, key=lambda g: _rank(seed, g)):
        side = EVAL if held < target else TRAIN
        held += len(group) if side == EVAL else 0
        out.update(dict.fromkeys(group, side))
    return out


@dataclass(frozen=True)
class ScenarioSplit:
    groups: list[list[int]]
    assignment: dict[int, str]  # scenario -> TRAIN or EVAL

    @property
    def train(self) -> set[int]:
        return {s for s, side in self.assignment.items() if side == TRAIN}

    @property
    def eval(self) -> set[int]:
        return {s for s, side in self.assignment.items() if side == EVAL}

    def side(self, case_id: str) -> str:
        """TRAIN or EVAL for a case id (`multi_turn_miss_func_17`)."""
        scenario = scenario_of(case_id)
        if scenario not in self.assignment:
            raise ValueError(f"{case_id}: scenario {scenario} is not among BFCL's multi-turn scenarios "
                             f"(0-{max(self.assignment)}); is bfcl-eval the version the split was made from?")
        return self.assignment[scenario]

    def is_eval(self, case_id: str) -> bool:
        return self.side(case_id) == EVAL


def split_cases(cases: Iterable[MultiTurnCase], seed: int, eval_share: float) -> ScenarioSplit:
    groups = scenario_groups(cases)
    return ScenarioSplit(groups=groups, assignment=assign_groups(groups, seed, eval_share))


@functools.cache
def _split(seed: int, eval_share: float) -> ScenarioSplit:
    return split_cases([c for cat in CATEGORIES for c in load_cases(cat)], seed, eval_share)


def scenario_split(params: MultiTurnParams) -> ScenarioSplit:
    """The split of all BFCL multi-turn scenarios, grouped over all four categories (never a sample:
    a sample would see fewer shared states and group less)."""
    return _split(params.seed, params.eval_share)


def evaluation_case_ids(params: MultiTurnParams, categories: Iterable[str] = CATEGORIES) -> list[str]:
    """The case ids the evaluate stage may score: the held-out scenarios in each of `categories`."""
    held = sorted(scenario_split(params).eval)
    return [f"{cat}_{s}" for cat in categories for s in held]
