"""BFCL's multi-turn cases as typed records.

The four categories (base, miss_func, miss_param, long_context) are variants of the same 200
scenarios: case `multi_turn_<category>_<i>` starts from scenario i's initial state and involves its
classes. `scenario` is that shared index, the unit a train/evaluation split must keep apart.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

CATEGORIES = ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context")

# The user message of a turn whose only news is functions that were held out until then (miss_func):
# BFCL's own wording for prompting models (constants.default_prompts), so our runs read as its own do.
ADDED_FUNCTIONS_NOTE = "I have updated some more functions you can choose from. What about now?"


@dataclass(frozen=True)
class MultiTurnCase:
    """One BFCL multi-turn case.

    `turns[i]` are turn i's user messages; a miss_func turn has none and brings `added_functions[i]`
    instead. `functions` are the BFCL function docs available from the first turn.
    """

    id: str
    category: str
    turns: list[list[dict[str, str]]]
    initial_config: dict[str, Any]
    involved_classes: list[str]
    functions: list[dict[str, Any]]
    ground_truth: list[list[str]]
    added_functions: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def scenario(self) -> int:
        """The scenario index shared by this case's variants in the other categories."""
        return scenario_of(self.id)

    @property
    def long_context(self) -> bool:
        # BFCL loads the long-context variant's larger initial state with this flag
        # (multi_turn_utils.execute_multi_turn_func_call).
        return "long_context" in self.category

    def user_text(self, turn: int) -> str:
        """Turn `turn`'s user message as one text (BFCL's note when the turn only adds functions)."""
        texts = [m["content"].strip() for m in self.turns[turn] if m.get("role") == "user"]
        return "\n".join(texts) if texts else ADDED_FUNCTIONS_NOTE


def scenario_of(case_id: str) -> int:
    """`multi_turn_miss_func_17` -> 17."""
    head, _, number = case_id.rpartition("_")
    if not head.startswith("multi_turn_") or not number.isdigit():
        raise ValueError(f"{case_id!r} is not a BFCL multi-turn case id (multi_turn_<category>_<n>)")
    return int(number)


def from_entry(entry: dict[str, Any], answer: list[list[str]]) -> MultiTurnCase:
    """A case from a BFCL dataset entry whose functions are populated (bfcl_eval.utils.load_dataset_entry)
    and its ground truth."""
    category = entry["id"].rpartition("_")[0]
    turns = entry["question"]
    if len(answer) != len(turns):
        raise ValueError(f"BFCL case {entry['id']}: {len(turns)} user turns but ground truth for {len(answer)}; "
                         "reinstall bfcl-eval (`pip install --no-deps --force-reinstall bfcl-eval`)")
    added = {int(k): copy.deepcopy(v) for k, v in (entry.get("missed_function") or {}).items()}
    return MultiTurnCase(
        id=entry["id"], category=category, turns=copy.deepcopy(turns),
        initial_config=copy.deepcopy(entry.get("initial_config") or {}),
        involved_classes=list(entry["involved_classes"]), functions=copy.deepcopy(entry["function"]),
        ground_truth=[list(calls) for calls in answer], added_functions=added,
    )


def load_cases(category: str) -> list[MultiTurnCase]:
    """Every case of a BFCL multi-turn category, by scenario."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown BFCL multi-turn category {category!r}: choose from {', '.join(CATEGORIES)}")
    from bfcl_eval.utils import load_dataset_entry, load_ground_truth_entry

    entries = load_dataset_entry(category, include_prereq=False, include_language_specific_hint=False)
    answers = {a["id"]: a["ground_truth"] for a in load_ground_truth_entry(category)}
    missing = [e["id"] for e in entries if e["id"] not in answers]
    if missing:
        raise ValueError(f"BFCL multi-turn cases without ground truth: {', '.join(missing[:5])}; "
                         "reinstall bfcl-eval (`pip install --no-deps --force-reinstall bfcl-eval`)")
    cases = [from_entry(e, answers[e["id"]]) for e in entries]
    return sorted(cases, key=lambda c: c.scenario)
