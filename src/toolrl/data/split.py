"""Deterministic stratified train/val/test split.

Strata are (source, number of calls: 0, 1, 2, 3+), so every split sees every source and every call
count in the mix's proportions. Inside a stratum, examples are ordered by a hash of (seed, id) and
cut by the split fractions: the assignment depends only on the ids and the seed, never on the order
records arrive in, and adding a source does not move the examples of another.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

from toolrl.data.schema import CanonicalExample

SPLITS = ("train", "val", "test")


def calls_bucket(n: int) -> str:
    return str(n) if n < 3 else "3+"


def stratum(example: CanonicalExample) -> tuple[str, str]:
    return example.source, calls_bucket(len(example.target.calls))


def rank(seed: int, example_id: str) -> str:
    """Order key of an example for seeded, order-free choices (the split, the no-call cap)."""
    return hashlib.sha256(f"{seed}:{example_id}".encode()).hexdigest()


def split_sizes(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """Rounded sizes for one stratum; train takes what val and test leave."""
    val = min(n, int(n * fractions["val"] + 0.5))
    test = min(n - val, int(n * fractions["test"] + 0.5))
    return {"train": n - val - test, "val": val, "test": test}


def assign(examples: list[CanonicalExample], fractions: dict[str, float], seed: int) -> dict[str, str]:
    """example id -> split name."""
    strata: dict[tuple[str, str], list[CanonicalExample]] = defaultdict(list)
    for ex in examples:
        strata[stratum(ex)].append(ex)
    out: dict[str, str] = {}
    for key in sorted(strata):
        members = sorted(strata[key], key=lambda e: rank(seed, e.id))
        sizes = split_sizes(len(members), fractions)
        order = ["val"] * sizes["val"] + ["test"] * sizes["test"] + ["train"] * sizes["train"]
        for ex, name in zip(members, order, strict=True):
            out[ex.id] = name
    return out
