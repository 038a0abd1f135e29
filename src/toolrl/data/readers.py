"""Read upstream records from wherever a source lives: a local file or folder (json, jsonl, parquet),
an http(s) URL, or a Hugging Face hub id (through `datasets.load_dataset`).

Every record keeps where it came from (file, line or index). A line that is not JSON is not an
error of the whole read: it comes back as a record with `error` set and goes to quarantine.
A source that cannot be read at all raises `DataError` with the fix.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolrl.data.schema import DataError

SUFFIXES = (".json", ".jsonl", ".parquet")
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass
class RawRecord:
    index: int  # position in the whole source, 0-based
    record: Any = None
    error: str | None = None  # why the record could not be parsed
    provenance: dict[str, Any] = field(default_factory=dict)


def _parse_lines(text: str, where: dict[str, Any]) -> list[tuple[Any, str | None, dict[str, Any]]]:
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((json.loads(line), None, {**where, "line": n}))
        except json.JSONDecodeError as exc:
            out.append((line[:2000], f"line {n} is not JSON ({exc.msg})", {**where, "line": n}))
    return out


def _parse_text(text: str, name: str, where: dict[str, Any]) -> list[tuple[Any, str | None, dict[str, Any]]]:
    """JSON (a list of records, or one record) or JSON lines, whatever the file is named."""
    if name.endswith(".jsonl"):
        return _parse_lines(text, where)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        if "\n" in text.strip():
            return _parse_lines(text, where)  # many `.json` files (BFCL's) are JSON lines
        raise DataError(f"{where.get('file') or name} is not JSON or JSON lines: fix or re-download it") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise DataError(f"{where.get('file') or name} holds a JSON {type(data).__name__}, not a list of records")
    return [(rec, None, {**where, "index_in_file": i}) for i, rec in enumerate(data)]


def _read_file(path: Path, where: dict[str, Any]) -> list[tuple[Any, str | None, dict[str, Any]]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several types for a broken file
            raise DataError(f"{path} is not a readable parquet file ({exc.__class__.__name__}: {exc})") from None
        return [(row, None, {**where, "row": i}) for i, row in enumerate(rows)]
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text: convert it or point to the json/jsonl/parquet file") from None
    return _parse_text(text, path.name, where)


def _read_local(path: Path) -> list[tuple[Any, str | None, dict[str, Any]]]:
    if path.is_file():
        if path.suffix not in SUFFIXES:
            raise DataError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(SUFFIXES)}")
        return _read_file(path, {"file": path.name})
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
    if not files:
        raise DataError(f"folder {path} holds no {'/'.join(SUFFIXES)} files")
    out = []
    for f in files:
        out.extend(_read_file(f, {"file": str(f.relative_to(path))}))
    return out


def _read_url(url: str) -> list[tuple[Any, str | None, dict[str, Any]]]:
    import httpx

    try:
        resp = httpx.get(url, follow_redirects=True, timeout=120)
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        raise DataError(f"cannot download {url} ({exc}): check the URL or download it and give the local path") from None
    name = url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    if name.endswith(".parquet"):
        import io

        import pyarrow.parquet as pq

        rows = pq.read_table(io.BytesIO(resp.content)).to_pylist()
        return [(row, None, {"url": url, "row": i}) for i, row in enumerate(rows)]
    return _parse_text(resp.text, name, {"url": url})


def _read_hub(repo_id: str, split: str) -> list[tuple[Any, str | None, dict[str, Any]]]:
    import datasets

    try:
        ds = datasets.load_dataset(repo_id, split=split)
    except Exception as exc:  # datasets raises many kinds (network, missing split, gated repo)
        raise DataError(
            f"cannot load hub dataset {repo_id!r} split {split!r} ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); without internet, download it and point "
            "`location` to the local files"
        ) from None
    return [(row, None, {"hub": repo_id, "split": split, "row": i}) for i, row in enumerate(ds)]


def read_records(location: str, split: str = "train") -> list[RawRecord]:
    """All records of a source, in source order."""
    path = Path(location).expanduser()
    if path.exists():
        rows = _read_local(path)
    elif location.startswith(("http://", "https://")):
        rows = _read_url(location)
    elif HUB_ID.match(location) and not location.startswith((".", "/")) and not location.endswith(SUFFIXES):
        rows = _read_hub(location, split)
    else:
        raise FileNotFoundError(
            f"data source {location!r} is neither an existing file or folder, an http(s) URL, nor a hub id "
            "(owner/name): fix `location` in params.yaml"
        )
    return [RawRecord(index=i, record=rec, error=err, provenance=prov) for i, (rec, err, prov) in enumerate(rows)]


def sample(records: list[Any], limit: int | None, seed: int) -> list[Any]:
    """`limit` records drawn with `seed`, kept in source order (all of them when limit is None)."""
    if limit is None or limit >= len(records):
        return list(records)
    picked = sorted(random.Random(seed).sample(range(len(records)), limit))
    return [records[i] for i in picked]
