"""Berkeley Function Calling Leaderboard categories, read from the installed `bfcl_eval` package.

Questions (`bfcl_eval/data/BFCL_v*_<category>.json`) are paired with `possible_answer/` by id. The
target takes the first acceptable value of every parameter; a parameter whose acceptable values
include "" is optional and left out; nested dicts are resolved the same way. Irrelevance categories
have no answers: they become no-call examples answered directly with one of `data.no_call_responses`.
A system message in the question is folded into the user turn that follows it (the dialogue has no
system role: the system prompt is the tool list).

Only the live categories (user-contributed APIs) are accepted: the non-live ones are what the
evaluate stage scores, and must never be trained on.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

from toolrl.config import ConfigError, DataParams, SourceParams
from toolrl.data import base
from toolrl.data.readers import RawRecord
from toolrl.data.schema import (
    Call,
    CanonicalExample,
    Converted,
    DataError,
    Message,
    Target,
    Tool,
    history_turn,
)
from toolrl.data.tool_schema import normalize_tools
from toolrl.jsonl import read_jsonl

NO_ANSWER_CATEGORIES = {"live_relevance"}  # any call is accepted there: no target to learn


def _paths() -> tuple[Path, Path, str]:
    try:
        from bfcl_eval.constants.category_mapping import VERSION_PREFIX
        from bfcl_eval.constants.eval_config import POSSIBLE_ANSWER_PATH, PROMPT_PATH
    except ImportError:
        raise DataError("the bfcl source needs the package bfcl-eval: `pip install --no-deps bfcl-eval`") from None
    return Path(PROMPT_PATH), Path(POSSIBLE_ANSWER_PATH), VERSION_PREFIX


def trainable_categories() -> list[str]:
    """BFCL's live single-turn categories that carry a target (answers or irrelevance)."""
    from bfcl_eval.constants.category_mapping import LIVE_CATEGORY

    return [c for c in LIVE_CATEGORY if c not in NO_ANSWER_CATEGORIES]


def check_categories(categories: list[str]) -> list[str]:
    """The categories to read (all trainable ones when empty); a held-out or unknown one is an error."""
    from bfcl_eval.constants.category_mapping import ALL_CATEGORIES, NON_LIVE_CATEGORY

    allowed = trainable_categories()
    for cat in categories:
        if cat in NON_LIVE_CATEGORY:
            raise ConfigError(
                f"data.sources bfcl category {cat!r} is a non-live BFCL category, held out for the evaluate "
                f"stage: training on it would leak the benchmark. Use the live ones: {', '.join(allowed)}"
            )
        if cat not in allowed:
            why = "has no possible answers" if cat in NO_ANSWER_CATEGORIES else (
                "is multi-turn (the bfcl_multi_turn source reads it)" if cat.startswith("multi_turn") else
                "is not single-turn" if cat in ALL_CATEGORIES else "is not a BFCL category")
            raise ConfigError(f"data.sources bfcl category {cat!r} {why}; use some of: {', '.join(allowed)}")
    return list(categories) or allowed


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise DataError(f"{path} is missing from the installed bfcl_eval: reinstall `bfcl-eval`")
    return [row for _, row in read_jsonl(path, "reinstall `bfcl-eval`", DataError)]


def records(src: SourceParams) -> list[RawRecord]:
    prompt_dir, answer_dir, prefix = _paths()
    version = metadata.version("bfcl-eval")
    out: list[RawRecord] = []
    for cat in check_categories(src.categories):
        name = f"{prefix}_{cat}.json"
        questions = _read_jsonl(prompt_dir / name)
        answers: dict[str, Any] = {}
        if "irrelevance" not in cat:
            answers = {a["id"]: a["ground_truth"] for a in _read_jsonl(answer_dir / name)}
        for line, q in enumerate(questions, start=1):
            rec = {"category": cat, **q}
            if "irrelevance" not in cat:
                rec["ground_truth"] = answers.get(q.get("id"))
            out.append(RawRecord(index=len(out), record=rec,
                                 provenance={"bfcl_eval": version, "category": cat, "file": name, "line": line}))
    return out


def _resolve_value(value: Any) -> Any:
    """A chosen value: dicts inside it (also inside lists) are nested possible answers."""
    if isinstance(value, dict):
        return resolve_arguments(value, nested=True)
    if isinstance(value, list):
        return [_resolve_value(v) for v in value]
    return value


def first_acceptable(values: Any, *, required: bool = False) -> tuple[bool, Any]:
    """(include?, value) for one parameter's list of acceptable values.

    "" among them means "may be left out": it is, unless the tool's schema requires the parameter
    (BFCL has a few such answers), then the first other value is used.
    """
    if not isinstance(values, list):
        raise ValueError(f"acceptable values are {type(values).__name__}, not a list")
    if not values:
        raise ValueError("a parameter has an empty list of acceptable values")
    if "" in values:
        others = [v for v in values if v != ""]
        if not required or not others:
            return False, None
        return True, _resolve_value(others[0])
    return True, _resolve_value(values[0])


def resolve_arguments(possible: dict[str, Any], required: list[str] | None = None, *,
                      nested: bool = False) -> dict[str, Any]:
    """BFCL's {param: [acceptable values]} -> {param: value}. Inside nested dicts a value that is
    not a list is taken as it is."""
    out = {}
    for name, values in possible.items():
        if nested and not isinstance(values, list):
            out[name] = _resolve_value(values)
            continue
        try:
            include, value = first_acceptable(values, required=name in (required or []))
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        if include:
            out[name] = value
    return out


def target_calls(ground_truth: Any, tools: list[Tool]) -> list[Call]:
    if not isinstance(ground_truth, list) or not ground_truth:
        raise ValueError("ground truth is not a non-empty list of calls")
    required = {t.name: t.parameters.get("required", []) for t in tools}
    calls = []
    for entry in ground_truth:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ValueError("a ground-truth call is not a one-key {name: arguments} object")
        (name, possible), = entry.items()
        if not isinstance(possible, dict):
            raise ValueError(f"arguments of {name!r} are not an object")
        calls.append(Call(name=name, arguments=resolve_arguments(possible, required.get(name))))
    return calls


def conversation(question: Any) -> list[Message]:
    """BFCL's `question` (turns of chat messages) -> the dialogue, with system text folded forward."""
    if not isinstance(question, list):
        raise ValueError("question is not a list of turns")
    out: list[Message] = []
    pending_system: list[str] = []
    for turn in question:
        for msg in turn if isinstance(turn, list) else [turn]:
            role, content = msg.get("role"), str(msg.get("content", ""))
            if role == "system":
                pending_system.append(content.strip())
            elif role == "user":
                out.append(Message(role="user", content="\n\n".join([*pending_system, content.strip()])))
                pending_system = []
            elif role == "assistant":
                out.append(history_turn([], content.strip()))
            elif role == "tool":
                out.append(Message(role="tool", content=content))
            else:
                raise ValueError(f"unknown role {role!r} in question")
    if pending_system:
        out.append(Message(role="user", content="\n\n".join(pending_system)))
    if not out or out[-1].role == "assistant":
        raise ValueError("question does not end with a user or tool turn")
    return out


def convert(raw: RawRecord, src: SourceParams, data: DataParams) -> list[Converted]:
    rec = raw.record
    upstream = rec.get("id")
    try:
        tools = normalize_tools(rec.get("function"))
    except ValueError as exc:
        return [base.reject(src, raw, base.INVALID_TOOLS, str(exc), upstream=upstream)]
    try:
        dialogue = conversation(rec.get("question"))
    except (ValueError, AttributeError) as exc:
        return [base.reject(src, raw, base.UNPARSEABLE_RECORD, str(exc), upstream=upstream)]
    eid = base.example_id(src, raw, upstream=upstream)
    if "irrelevance" in rec["category"]:
        target = Target(response=base.no_call_response(data, eid))
    else:
        if rec.get("ground_truth") is None:
            return [base.reject(src, raw, base.UNPARSEABLE_TARGET, "no possible answer with this id",
                                upstream=upstream)]
        try:
            target = Target(calls=target_calls(rec["ground_truth"], tools))
        except ValueError as exc:
            reason = base.NO_ACCEPTABLE_VALUE if "acceptable" in str(exc) else base.UNPARSEABLE_TARGET
            return [base.reject(src, raw, reason, str(exc), upstream=upstream)]
    return [CanonicalExample(
        id=eid, source=src.tag, tools=tools, conversation=dialogue,
        target=target, provenance=base.provenance(src, raw, upstream_id=upstream),
    )]
