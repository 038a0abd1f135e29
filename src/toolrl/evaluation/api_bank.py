"""API-Bank in ToolRL's processed form: a JSON list of `{system, user, answer, other}` per level.

`system` already lists the tools in ToolRL's prompt format and `user` holds the dialogue history
ending with the request for one call, so they are used as given (system and user messages); `answer`
is a Python-literal dict `{'name': ..., 'parameters': {...}}` (the JSON may also hold it parsed, as
the level-2 file does; a list of calls is accepted too).

A case is correct when, for every gold call, some predicted call has exactly its name and arguments
(`==` on the argument dicts). A level is named after its file (`level-2-...json` -> `level_2`).
Selection: a seeded sample of `limit` of the file's readable records (`sampling.draw`, by case id
`level_<n>_<index in the file>`). A record that cannot be read is not dropped silently: every one in
the file is reported with its reason (any could have been drawn) and left out of the accuracy.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolrl.evaluation.records import BenchmarkCase, Grade, parse_error_category
from toolrl.evaluation.sampling import draw
from toolrl.formats import parse

BENCHMARK = "api_bank"


@dataclass
class Level:
    name: str
    examples: list[BenchmarkCase]
    problems: list[str] = field(default_factory=list)  # records left out, with the reason


def level_name(path: str | Path) -> str:
    match = re.search(r"level-(\d+)", Path(path).name)
    if match:
        return f"level_{match.group(1)}"
    return re.sub(r"[^A-Za-z0-9_]+", "_", Path(path).stem)


def _gold_calls(answer: Any) -> list[dict[str, Any]]:
    """The gold calls of a record's `answer` (a Python-literal string); raises ValueError."""
    if isinstance(answer, str):
        try:
            value = ast.literal_eval(answer.strip())
        except (ValueError, SyntaxError) as exc:
            raise ValueError(f"answer is not a Python literal ({type(exc).__name__})") from None
    elif isinstance(answer, dict | list):
        value = answer  # some exports hold the parsed dict already
    else:
        raise ValueError(f"answer is a {type(answer).__name__}, expected a Python-literal string or a dict")
    calls = value if isinstance(value, list) else [value]
    if not calls:
        raise ValueError("answer holds no call")
    out = []
    for call in calls:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise ValueError("answer is not a {'name': str, 'parameters': dict} call")
        params = call.get("parameters", call.get("arguments", {}))
        if not isinstance(params, dict):
            raise ValueError("answer's parameters are not a dict")
        out.append({"name": call["name"], "arguments": params})
    return out


def _read_records(path: Path) -> list[Any]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        # JSON Lines is accepted as well; a bad line is an error naming the line.
        data = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    data.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}: line {n} is not JSON ({exc.msg}); expected a JSON list "
                                     "or JSON Lines of {system, user, answer, other} records") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of {{system, user, answer, other}} records")
    return data


def load_level(path: str | Path, limit: int | None, seed: int = 0) -> Level:
    """`limit` readable records of a level file drawn with `seed` (`sampling.draw`; None: all), and a
    problem line for each record of the file that cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"API-Bank file {path} not found: set evaluate.api_bank_paths to ToolRL's processed level "
            "files (e.g. level-2-api_processed.json), or drop api_bank from evaluate.benchmarks"
        )
    name = level_name(path)
    readable, problems = [], []
    for index, record in enumerate(_read_records(path)):
        try:
            readable.append(_case(name, index, record))
        except ValueError as exc:
            problems.append(f"{path.name} record {index}: {exc}; left out")
    return Level(name=name, examples=draw(readable, limit, seed, lambda case: case.id), problems=problems)


def _case(level: str, index: int, record: Any) -> BenchmarkCase:
    """One record as a case; raises ValueError saying what is wrong with it."""
    if not isinstance(record, dict):
        raise ValueError("record is not an object")
    missing = [k for k in ("system", "user") if not isinstance(record.get(k), str)]
    if missing:
        raise ValueError(f"record has no string {', '.join(missing)}")
    return BenchmarkCase(
        id=f"{level}_{index}",
        benchmark=BENCHMARK,
        category=level,
        messages=[{"role": "system", "content": record["system"]}, {"role": "user", "content": record["user"]}],
        gold={"calls": _gold_calls(record.get("answer")), "other": record.get("other")},
    )


def grade(example: BenchmarkCase, completion: str) -> Grade:
    """Grade one completion; never raises."""
    parsed = parse(completion)
    parse_error = parse_error_category(parsed)
    if parse_error:
        return Grade(example.id, False, parse_error, parsed.error or "")
    if not parsed.calls:
        return Grade(example.id, False, "no_call", "no tool call")
    for gold in example.gold["calls"]:
        if any(c.name == gold["name"] and c.arguments == gold["arguments"] for c in parsed.calls):
            continue
        same_name = [c for c in parsed.calls if c.name == gold["name"]]
        if not same_name:
            names = ", ".join(c.name for c in parsed.calls)
            return Grade(example.id, False, "wrong_name", f"expected {gold['name']}, called {names}")
        return Grade(example.id, False, "wrong_args",
                       f"{gold['name']}: expected {json.dumps(gold['arguments'], ensure_ascii=False)}, got "
                       f"{json.dumps(same_name[0].arguments, ensure_ascii=False)}"[:500])
    return Grade(example.id, True)
