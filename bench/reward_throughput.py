"""Reward throughput: score the shared reference vectors repeatedly, single process, and print scores/s.

    .venv/bin/python bench/reward_throughput.py [--vectors ../shared/reference/reward_vectors.jsonl]
        [--seconds 3] [--repeats 5] [--check]

Each vector is scored with its own variant and step through one `Scorer` per variant (what the TRL
adapter does); `score()` (the one-call convenience) is timed too. The figure is the best of
`--repeats` timed rounds (the machine is shared: the best round is the least disturbed one).
`--check` first verifies every vector against its expected scores (1e-9). `--passes N` scores the
vectors N times untimed and exits, for a profiler: the load-independent cost per score is the
difference between `--passes 5` and `--passes 0` under `valgrind --tool=callgrind`, divided by 5 x 960.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from toolrl.rewards import Scorer, score

DEFAULT_VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "reward_vectors.jsonl"


def load(path: Path) -> list[dict]:
    if not path.exists():
        sys.exit(f"vectors file {path} not found: pass --vectors PATH (the shared reward_vectors.jsonl)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def rounds(fn, items, seconds: float, repeats: int) -> tuple[float, float]:
    """Best scores/s over `repeats` rounds of about `seconds` each: by wall clock, and by this
    process's CPU time (what the code costs, whatever else the shared machine is running)."""
    t0 = time.perf_counter()
    fn(items)
    passes = max(1, int(seconds / max(time.perf_counter() - t0, 1e-6)))
    wall = cpu = 0.0
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(passes):
            fn(items)
        w1, c1 = time.perf_counter(), time.process_time()
        n = passes * len(items)
        wall, cpu = max(wall, n / (w1 - w0)), max(cpu, n / max(c1 - c0, 1e-9))
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=Path, default=DEFAULT_VECTORS)
    ap.add_argument("--seconds", type=float, default=3.0, help="length of one timed round")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--check", action="store_true", help="verify every vector before timing")
    ap.add_argument("--passes", type=int, default=None, help="score N passes untimed and exit (profilers)")
    args = ap.parse_args(argv)

    rows = load(args.vectors)
    scorers = {name: Scorer(name) for name in sorted({r["variant"] for r in rows})}
    items = [(scorers[r["variant"]], r["completion"], r["ground_truth"], r["step"]) for r in rows]
    if args.check:
        bad = [r["id"] for r, (s, c, g, st) in zip(rows, items, strict=True)
               if any(abs(a - b) > 1e-9 for a, b in zip(s(c, g, st), r["expected"], strict=True))]
        print(f"parity: {len(rows) - len(bad)}/{len(rows)} vectors match" + (f" (bad: {bad[:10]})" if bad else ""))
        if bad:
            return 1

    def with_scorers(batch):
        for s, c, g, st in batch:
            s(c, g, st)

    if args.passes is not None:
        for _ in range(args.passes):
            with_scorers(items)
        return 0

    calls = [(r["completion"], r["ground_truth"], r["variant"], r["step"]) for r in rows]

    def with_score(batch):
        for c, g, v, st in batch:
            score(c, g, v, st)

    print(f"vectors: {len(rows)} ({len(scorers)} variants), best of {args.repeats} rounds of ~{args.seconds:g}s")
    for label, fn, batch in (("Scorer per variant", with_scorers, items), ("score() function", with_score, calls)):
        wall, cpu = rounds(fn, batch, args.seconds, args.repeats)
        print(f"{label:18s}: {wall:,.0f} scores/s wall clock, {cpu:,.0f} scores/s of CPU time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
