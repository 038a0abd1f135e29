"""BFCL's multi-turn categories graded by BFCL's own multi-turn checker, one finished trajectory at a time.

`grade_trajectory(case, trajectory)` does what BFCL's `eval_runner._evaluate_single_multi_turn_entry`
does with one entry (bfcl-eval 2026.3.23), on our `Trajectory` instead of a result file:

1. fewer turns than the case has (the conversation stopped at a limit before the last user turn):
   wrong, `force_terminated`, without running the checker (BFCL: `multi_turn:force_terminated`);
2. per turn, the calls of each model message that made any (`Trajectory.decoded()`: a message that
   decodes to no call is left out, as BFCL's runner leaves it out);
3. `multi_turn_checker(decoded, ground_truth, {id, initial_config, involved_classes}, category, name)`:
   after every turn whose ground truth has calls, the state of every instance must equal the ground
   truth's, and each of the turn's ground-truth results must be among the results of the model's calls
   so far. A turn whose ground truth is empty (miss_func, miss_param: the model should ask, not call)
   is executed but not checked, and the runner does not run `multi_turn_irrelevance_checker` either
   (imported there, never called), so we do not.

Two things BFCL's runner can afford and a trainer cannot:

- BFCL's executor keeps each instance in `multi_turn_utils`' module globals under
  `<model name>_<case id>_<class>_instance` and reuses it on the next call with the same name. GRPO
  grades several rollouts of one case in one process, so each grading gets a model name of its own and
  its instances are deleted afterwards.
- The executor `eval`s each call string. Our call strings come from the model, so a call whose name is
  not a method of the case's classes, or whose argument names are not identifiers, is replaced by a call
  to a function that does not exist: the executor answers it with an error result, as it answers any
  unknown function, and no builtin (`open`, `breakpoint`, ...) can be reached through it. Values are
  always `repr` of JSON values (`environment.call_string`), which are literals.
"""

from __future__ import annotations

import functools
import inspect
import keyword
import re
import uuid
from typing import Any

from toolrl.evaluation.records import Grade
from toolrl.multiturn.cases import MultiTurnCase
from toolrl.multiturn.environment import own_states
from toolrl.multiturn.trajectory import Trajectory

# The checker's error types, as our error categories (evaluation/records.py).
ERROR_TYPES = {
    "multi_turn:force_terminated": "force_terminated",
    "multi_turn:empty_turn_model_response": "empty_turn",
    "multi_turn:instance_state_mismatch": "state_mismatch",
    "multi_turn:execution_response_mismatch": "response_mismatch",
}
# What an unsafe call is replaced with: no class has it, so the executor's `eval` raises NameError.
UNKNOWN_CALL = "toolrl_unknown_function()"
_NAME_PREFIX = "toolrl_mt_"


@functools.cache
def official_checker():
    """`bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker.multi_turn_checker` and the module
    whose globals hold the executor's instances."""
    from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker

    return multi_turn_checker, multi_turn_utils


@functools.cache
def _method_names(classes: tuple[str, ...]) -> frozenset[str]:
    """The public methods of these BFCL classes: the only names the executor binds to an instance."""
    from toolrl.multiturn.environment import _class_of

    return frozenset(name for c in classes for name, _ in inspect.getmembers(_class_of(c), inspect.isfunction)
                     if not name.startswith("_"))


def _identifier(name: Any) -> bool:
    return isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)


def safe_decoded(trajectory: Trajectory, classes: list[str]) -> list[list[list[str]]]:
    """`trajectory.decoded()` with every call the executor could not run as a method of these classes
    replaced by `UNKNOWN_CALL` (see the module doc)."""
    methods = _method_names(tuple(classes))
    out = []
    for turn in trajectory.turns:
        steps = []
        for step in turn.steps:
            calls = step.executed_calls()  # what the environment refused, the checker must not run either
            if not calls:
                continue
            steps.append([decoded if c.name in methods and all(_identifier(k) for k in c.arguments) else UNKNOWN_CALL
                          for c, decoded in zip(calls, _strings(calls), strict=True)])
        out.append(steps)
    return out


def _strings(calls) -> list[str]:
    from toolrl.multiturn.environment import call_string

    return [call_string(c) for c in calls]


def turns_reached(trajectory: Trajectory) -> int:
    """User turns the conversation reached: turns with at least one model message (a record may list
    the turns it never reached as empty ones)."""
    reached = len(trajectory.turns)
    while reached and not trajectory.turns[reached - 1].steps:
        reached -= 1
    return reached


def _forget(utils: Any, prefix: str) -> None:
    """Delete the executor's instances whose names start with `prefix` (one grading's own)."""
    for name in [n for n in vars(utils) if n.startswith(prefix)]:
        del vars(utils)[name]


def grade_trajectory(case: MultiTurnCase, trajectory: Trajectory) -> Grade:
    """Grade one finished conversation with BFCL's multi-turn checker; never raises for anything the
    model did. Raises ValueError for a trajectory of another case, or with more turns than the case."""
    if trajectory.case_id != case.id:
        raise ValueError(f"trajectory of case {trajectory.case_id!r} graded against case {case.id!r}")
    if len(trajectory.turns) > len(case.ground_truth):
        raise ValueError(f"trajectory of {case.id} has {len(trajectory.turns)} turns; the case has "
                         f"{len(case.ground_truth)}")
    reached = turns_reached(trajectory)
    if reached < len(case.ground_truth):
        return Grade(case.id, False, "force_terminated",
                     f"the conversation stopped ({trajectory.stop}) after {reached} of {len(case.ground_truth)} turns")
    decoded = safe_decoded(trajectory, case.involved_classes)
    checker, utils = official_checker()
    # the executor's instance names, with its own substitutions (multi_turn_utils: re.sub(r'[-./:]', '_'))
    model_name = f"{_NAME_PREFIX}{uuid.uuid4().hex}"
    entry = {"id": case.id, "initial_config": case.initial_config, "involved_classes": list(case.involved_classes)}
    try:
        with own_states(case.involved_classes):  # the model's and the ground truth's instances apart
            result = checker(decoded, [list(t) for t in case.ground_truth], entry, case.category, model_name)
    except Exception as exc:  # the checker's own failure is not the model's: counted (checked=True), wrong
        return Grade(case.id, False, "checker_error", f"{type(exc).__name__}: {exc}", checked=True)
    finally:
        _forget(utils, re.sub(r"[-./:]", "_", model_name))
    if result.get("valid"):
        return Grade(case.id, True, checked=True)
    error_type = str(result.get("error_type", ""))
    error = ERROR_TYPES.get(error_type, "state_mismatch")
    detail = f"{error_type}: {result.get('error_message', '')}"
    differences = (result.get("details") or {}).get("differences")
    if differences:  # which attributes differ, for the report's example failures
        detail += f" (differs in: {', '.join(map(str, differences))})"
    return Grade(case.id, False, error, detail[:500], checked=True)
