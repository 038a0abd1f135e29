"""JSON lines: one reader that names the file and line of a bad record, one writer.

Every stage reads and writes jsonl (curated records, TRM step records, BFCL's files); a bad line must
say where it is and how to fix it, never surface as a bare JSONDecodeError.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def parse_lines(path: str | Path) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, value, None) for every non-blank line, or (line number, None, why) for a line
    that is not JSON: for readers that collect bad lines rather than stop at the first."""
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line), None
            except json.JSONDecodeError as exc:
                yield lineno, None, f"not valid JSON ({exc.msg})"


def read_jsonl(path: str | Path, fix: str, error: type[Exception] = ValueError) -> Iterator[tuple[int, Any]]:
    """(line number, value) for every non-blank line; a line that is not JSON raises `error` naming the
    file and line, followed by `fix` (what to do about it)."""
    for lineno, value, problem in parse_lines(path):
        if problem:
            raise error(f"{path} line {lineno}: {problem}; {fix}")
        yield lineno, value


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> None:
    """One JSON value per line, UTF-8 kept as is (not \\u-escaped)."""
    with Path(path).open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
