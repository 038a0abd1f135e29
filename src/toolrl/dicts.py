"""Nested mappings flattened to one level: the one walker behind MLflow params (`a.b`), metric names
(`stage/a/b`) and profile overrides (`a.b=value`).

    >>> flatten({"sft": {"bfcl": {"overall": 0.5}}, "note": "x"}, "evaluate")
    {'evaluate/sft/bfcl/overall': 0.5, 'evaluate/note': 'x'}
    >>> numbers({"sft": {"overall": 0.5}, "note": "x", "ok": True}, "evaluate")
    {'evaluate/sft/overall': 0.5, 'evaluate/ok': 1.0}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def flatten(tree: Any, prefix: str = "", sep: str = "/", keep_empty: bool = False) -> dict[str, Any]:
    """Every leaf of nested mappings, keyed by its path of keys joined with `sep`, under `prefix` when
    one is given, in the mappings' order. Anything but a mapping is a leaf, lists included (whole).
    An empty mapping has no leaves, unless `keep_empty`: then one below the root is a leaf itself (a
    profile that sets a mapping to `{}` must say so). A tree that is itself a leaf comes back as
    `{prefix: tree}`."""
    out: dict[str, Any] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping) and (node or not keep_empty or not path):
            for key, value in node.items():
                walk(value, f"{path}{sep}{key}" if path else str(key))
        else:
            out[path] = node

    walk(tree, prefix)
    return out


def numbers(tree: Any, prefix: str = "", sep: str = "/", bools: bool = True) -> dict[str, float]:
    """The numeric leaves of `flatten(tree, prefix, sep)` as floats (metrics); the rest (text, None,
    lists) is left out on purpose. `bools`: whether True/False count, as 1.0/0.0."""
    return {key: float(value) for key, value in flatten(tree, prefix, sep).items()
            if isinstance(value, int | float) and (bools or not isinstance(value, bool))}
