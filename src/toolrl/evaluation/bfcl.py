"""BFCL (Berkeley Function Calling Leaderboard), read from the installed `bfcl_eval` package and graded
with BFCL's own AST checker.

- Data: `bfcl_eval.utils.load_dataset_entry` (the prompts, with the language hint BFCL adds to every
  tool description, exactly as BFCL sends them to a model) and `load_ground_truth_entry` (the
  possible answers). Selection: a seeded sample of `limit` cases per category (`sampling.draw`).
- Prompt: the project's tool-use format (`formats.prompt_messages`) listing the case's functions
  converted to JSON-schema style (BFCL's `dict`/`float`/`tuple` types mapped through BFCL's own
  `GORILLA_TO_OPENAPI` table). A system message of the case (some live cases have one) is appended to
  our system prompt; an assistant turn of the history is shown as a `<response>`.
- Grading: our completion is parsed with `formats.parse`, its calls turned into BFCL's decoded form
  `[{func_name: {arg: value}}]` and handed to `ast_checker` with the un-hinted function docs, as
  BFCL's own `eval_runner` does. Irrelevance categories are correct when no call is made (like BFCL,
  a call block that cannot be decoded counts as no call); `live_relevance` when at least one is.
- A crash inside the checker is a wrong answer (`checker_error`), counted and listed in the report's
  warnings (`checker_warnings`); a checker that crashes on every case fails the stage (`CheckerBroken`).
"""

from __future__ import annotations

import copy
import functools
import sys
import types
from typing import Any

from toolrl.evaluation.records import BenchmarkCase, Grade, parse_error_category
from toolrl.evaluation.sampling import draw
from toolrl.formats import RESP_CLOSE, RESP_OPEN, parse, prompt_messages

BENCHMARK = "bfcl"
# The model name we give the checker. It only uses it to decide whether to rewrite "." in function
# names to "_" (for APIs that forbid dots); our format keeps names verbatim, so never.
CHECKER_MODEL_NAME = "toolrl"
IRRELEVANCE = {"irrelevance", "live_irrelevance"}
RELEVANCE = {"live_relevance"}


# ---------------------------------------------------------------- the official checker


def _install_model_config_standin() -> None:
    """Give `bfcl_eval.constants.model_config` a stand-in before the checker imports it.

    The real module imports the handler of every model on the leaderboard, which pull in anthropic,
    openai, google-genai, tree-sitter, ... that this project does not install (bfcl-eval is installed
    with --no-deps). The AST checker reads exactly one thing from it: `MODEL_CONFIG_MAPPING[name]
    .underscore_to_dot`. The stand-in answers that for our model name, and leaves the entries of a
    stand-in someone else installed first untouched.
    """
    name = "bfcl_eval.constants.model_config"
    module = sys.modules.get(name)
    if module is None:
        module = types.ModuleType(name, "toolrl stand-in: only what the AST checker reads")
        module.MODEL_CONFIG_MAPPING = {}
        sys.modules[name] = module
    module.MODEL_CONFIG_MAPPING.setdefault(CHECKER_MODEL_NAME, types.SimpleNamespace(underscore_to_dot=False))


@functools.cache
def official_checker():
    """`bfcl_eval.eval_checker.ast_eval.ast_checker.ast_checker` and BFCL's `Language` enum."""
    _install_model_config_standin()
    from bfcl_eval.constants.enums import Language
    from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker

    return ast_checker, Language


# ---------------------------------------------------------------- data


def _json_schema_type(bfcl_type: str | None) -> str:
    from bfcl_eval.constants.type_mappings import GORILLA_TO_OPENAPI

    return GORILLA_TO_OPENAPI.get(bfcl_type or "string", "string")


def _convert_schema(node: dict[str, Any]) -> dict[str, Any]:
    out = dict(node)
    out["type"] = _json_schema_type(node.get("type"))
    if isinstance(node.get("properties"), dict):
        out["properties"] = {k: _convert_schema(v) for k, v in node["properties"].items()}
    if isinstance(node.get("items"), dict):
        out["items"] = _convert_schema(node["items"])
    return out


def to_tool(function: dict[str, Any]) -> dict[str, Any]:
    """A BFCL function doc as a JSON-schema style tool (what `formats.prompt_messages` lists)."""
    params = function.get("parameters") or {"type": "dict", "properties": {}}
    return {
        "name": function["name"],
        "description": function.get("description", ""),
        "parameters": _convert_schema({**params, "type": "dict"}),
    }


def messages_for(functions: list[dict[str, Any]], turns: list[dict[str, str]]) -> list[dict[str, str]]:
    """The chat prompt of a case: our system prompt with its tools, then its dialogue."""
    system_notes = [t["content"].strip() for t in turns if t["role"] == "system" and t["content"].strip()]
    conversation = []
    for turn in turns:
        if turn["role"] == "assistant":
            conversation.append({"role": "assistant", "content": f"{RESP_OPEN} {turn['content']} {RESP_CLOSE}"})
        elif turn["role"] in ("user", "tool"):
            conversation.append({"role": turn["role"], "content": turn["content"]})
    messages = prompt_messages([to_tool(f) for f in functions], conversation)
    if system_notes:
        messages[0] = {"role": "system", "content": messages[0]["content"] + "\n\n" + "\n".join(system_notes)}
    return messages


def has_answers(category: str) -> bool:
    return category not in IRRELEVANCE | RELEVANCE


def load_category(category: str, limit: int | None, seed: int = 0) -> list[BenchmarkCase]:
    """`limit` cases of a BFCL category drawn with `seed` (`sampling.draw`; None: all), as examples."""
    from bfcl_eval.utils import load_dataset_entry, load_ground_truth_entry

    hinted = load_dataset_entry(category, include_prereq=False, include_language_specific_hint=True)
    raw = {e["id"]: e for e in load_dataset_entry(category, include_prereq=False,
                                                  include_language_specific_hint=False)}
    answers = {a["id"]: a["ground_truth"] for a in load_ground_truth_entry(category)} if has_answers(category) else {}
    examples = []
    for entry in draw(hinted, limit, seed, lambda e: e["id"]):
        if has_answers(category) and entry["id"] not in answers:
            raise ValueError(f"BFCL case {entry['id']} has no possible answer in bfcl_eval's data: "
                             "reinstall bfcl-eval (`pip install --no-deps --force-reinstall bfcl-eval`)")
        examples.append(BenchmarkCase(
            id=entry["id"],
            benchmark=BENCHMARK,
            category=category,
            messages=messages_for(entry["function"], entry["question"][0]),
            gold={"functions": copy.deepcopy(raw[entry["id"]]["function"]), "answer": answers.get(entry["id"])},
        ))
    return examples


# ---------------------------------------------------------------- grading


def decoded_calls(calls) -> list[dict[str, dict[str, Any]]]:
    """Our calls in BFCL's decoded form `[{func_name: {arg: value}}]`."""
    return [{c.name: dict(c.arguments)} for c in calls]


def _error_category(error_type: str, errors: list, n_pred: int, n_gold: int) -> str:
    kind = error_type.split(":", 1)[-1]
    if kind == "wrong_count":
        return "extra_call" if n_pred > n_gold else "missing_call"
    if kind == "wrong_func_name":
        return "wrong_name"
    if kind in ("missing_required", "missing_optional"):
        return "missing_param"
    if kind == "unexpected_param":
        return "unexpected_param"
    if error_type.startswith("type_error"):
        return "wrong_type"
    if error_type.startswith("value_error") or error_type.startswith(("dict_checker", "list_dict_checker")):
        return "wrong_value"
    if kind == "cannot_find_match":
        # The checker lists, for the first answer it could not match, why each candidate failed;
        # when every candidate failed for the same reason, that reason is the error.
        subs = {str(v.get("sub_error_type", "")) for e in errors if isinstance(e, dict) for v in e.values()
                if isinstance(v, dict)}
        if len(subs) == 1:
            return _error_category(subs.pop(), [], n_pred, n_gold)
        return "no_match"
    return "wrong_value"


def grade(example: BenchmarkCase, completion: str) -> Grade:
    """Grade one completion; never raises."""
    parsed = parse(completion)
    category = example.category
    if category in IRRELEVANCE:
        if parsed.calls:
            names = ", ".join(c.name for c in parsed.calls)
            return Grade(example.id, False, "unexpected_call", f"called {names}; no call was expected")
        return Grade(example.id, True)
    parse_error = parse_error_category(parsed)
    if category in RELEVANCE:
        if parsed.calls:
            return Grade(example.id, True)
        return Grade(example.id, False, parse_error or "no_call", parsed.error or "no tool call")
    if parse_error:
        return Grade(example.id, False, parse_error, parsed.error or "")
    if not parsed.calls:
        return Grade(example.id, False, "no_call", "no tool call")
    checker, language = official_checker()
    answer = example.gold["answer"]
    try:
        result = checker(copy.deepcopy(example.gold["functions"]), decoded_calls(parsed.calls),
                         copy.deepcopy(answer), language.PYTHON, category, CHECKER_MODEL_NAME)
    except Exception as exc:  # the checker indexes into our output freely; a crash there is a wrong answer
        return Grade(example.id, False, "checker_error", f"{type(exc).__name__}: {exc}", checked=True)
    if result.get("valid"):
        return Grade(example.id, True, checked=True)
    errors = result.get("error") or []
    error = _error_category(str(result.get("error_type", "")), errors, len(parsed.calls), len(answer))
    detail = "; ".join(e if isinstance(e, str) else str(e) for e in errors)[:500]
    return Grade(example.id, False, error, detail, checked=True)


class CheckerBroken(RuntimeError):
    """BFCL's official checker raised on every case it was given: the checker is broken, not the models."""


def checker_warnings(graded: dict[str, list[Grade]]) -> list[str]:
    """One warning per model (label -> its BFCL grades) for the cases on which the official checker
    raised; they count as wrong answers (`checker_error`). Raises CheckerBroken when it raised on every
    case it was given, over all models: then no score of the run means anything."""
    warnings, checked, crashed = [], 0, []
    for label, grades in graded.items():
        ran = [g for g in grades if g.checked]
        bad = [g for g in ran if g.error == "checker_error"]
        checked, crashed = checked + len(ran), crashed + bad
        if bad:
            warnings.append(f"bfcl: the official checker raised on {len(bad)} of the {len(ran)} cases it graded "
                            f"for model {label} (counted wrong, error category checker_error); first: "
                            f"{bad[0].id}: {bad[0].detail}")
    if checked and len(crashed) == checked:
        raise CheckerBroken(
            f"BFCL's official checker raised on every one of the {checked} cases it was given (first: "
            f"{crashed[0].id}: {crashed[0].detail}). The checker is broken, not the models: check the installed "
            "bfcl-eval (`pip install --no-deps --force-reinstall bfcl-eval==2026.3.23`, as infra/bootstrap.sh "
            "does). The completions are cached: a rerun only grades again.")
    return warnings
