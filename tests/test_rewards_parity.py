"""Exact parity with the ToolRL reference scorer on its 960 shared vectors (every variant and step).

The vectors live outside the repository (`../shared/reference/reward_vectors.jsonl`, beside the
clone in the project's CI); a user's clone lacks them, so the test skips there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolrl.rewards import REFERENCE_VARIANTS, Scorer

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "reward_vectors.jsonl"


@pytest.mark.skipif(not VECTORS.exists(), reason=f"reference vectors not found at {VECTORS}")
def test_all_reference_vectors_match_to_1e_9():
    rows = [json.loads(line) for line in VECTORS.read_text().splitlines() if line.strip()]
    assert len(rows) == 960
    assert {r["variant"] for r in rows} == set(REFERENCE_VARIANTS)
    scorers = {name: Scorer(name) for name in REFERENCE_VARIANTS}
    mismatches = []
    for r in rows:
        got = scorers[r["variant"]](r["completion"], r["ground_truth"], r["step"])
        if any(abs(a - b) > 1e-9 for a, b in zip(got, r["expected"], strict=True)):
            mismatches.append((r["id"], r["variant"], r["step"], r["kind"], tuple(got), r["expected"]))
    assert not mismatches, f"{len(mismatches)} of {len(rows)} differ, first: {mismatches[:5]}"
