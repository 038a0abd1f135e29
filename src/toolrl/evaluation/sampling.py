"""Which cases an evaluation scores: a stratified sample per category, fixed by a seed.

Each BFCL category and each API-Bank level is its own stratum, so every category gets
min(limit, its size) cases whatever the others hold. Inside a stratum the cases are ordered by a
hash of (seed, case id), the same seeded order the curated train/val/test split uses
(`toolrl.data.split.rank`), and the first `limit` are taken. So the sample:

- depends only on the seed and the ids: the same on every run and machine, in whatever order the
  data arrives;
- is nested: the sample at N is the first N of the sample at any larger N, so raising `limit` only
  adds cases (the completion cache then generates just those) and never swaps one for another;
- is a random sample of the category, which the report's intervals assume. A category's first ids
  are whatever its authors wrote first, and those were easier (docs/RESULTS.md).

The cases come back in that seeded order; `limit=None` returns every case, in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from toolrl.data.split import rank

T = TypeVar("T")


def draw(cases: Sequence[T], limit: int | None, seed: int, case_id: Callable[[T], str]) -> list[T]:
    """The first `limit` cases of one stratum in the seeded order of their ids (all when limit is None)."""
    ordered = sorted(cases, key=lambda case: rank(seed, case_id(case)))
    return ordered if limit is None else ordered[:limit]
