"""JSON lines: one reader that names the file and line of a bad record, one writer.

Every stage reads and writes jsonl (curated records, TRM step records, BFCL's files); a bad line must
say where it is and how to fix it, never surface as a bare JSONDecodeError.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def read_jsonl(path: str | Path, fix: str, error: type[Exception] = ValueError) -> Iterator[tuple[int, Any]]:
    """(line number, value) for every non-blank line; a line that is not JSON raises `error` naming the
    file and line, followed by `fix` (what to do about it)."""
    path = Path(path)
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{path} line {lineno}: not valid JSON ({exc.msg}); {fix}") from None
            yield lineno, value


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> None:
    """One JSON value per line, UTF-8 kept as is (not \\u-escaped)."""
    with Path(path).open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
