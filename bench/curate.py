"""Curation time, whole and per step, on the mix of params.yaml (default: BFCL live, offline).

    .venv/bin/python bench/curate.py [--params params.yaml] [-S data.key=value ...] [--repeats 2]

Prints a markdown table: one row per step (read + convert, validate, deduplicate, render, tokenizer
load, prompt token counting, whole `curate()` call). Module imports are not timed; the `curate()`
row is the stage as `toolrl data curate --no-track` runs it, minus interpreter start-up. Outputs go
to a temporary folder, so the workspace's data/curated is left alone.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter, defaultdict

from toolrl.config import load_params
from toolrl.data import curate as stage
from toolrl.data import dedup
from toolrl.data.schema import render_views


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("-S", "--set", dest="overrides", action="append", default=[])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    params = load_params(args.params, args.overrides)
    rows: dict[str, list[float]] = defaultdict(list)
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            params.data.output_dir = tmp
            data = params.data
            examples = []
            start = time.perf_counter()
            counts: dict[str, Counter] = defaultdict(Counter)
            for src in data.sources:
                examples += stage.convert_source(src, data, counts)[0]
            rows["read + convert"].append(time.perf_counter() - start)
            (valid, _), t = timed(stage.validate_all, examples)
            rows["validate"].append(t)
            (unique, _), t = timed(dedup.deduplicate, valid, data.near_duplicate_threshold)
            rows["deduplicate"].append(t)
            rendered, t = timed(lambda xs: [render_views(e) for e in xs], unique)
            rows["render views"].append(t)
            tokenizer, t = timed(stage.load_tokenizer, data.tokenizer)
            rows["tokenizer load"].append(t)
            _, t = timed(stage.prompt_lengths, rendered, tokenizer)
            rows["count prompt tokens"].append(t)
            result, t = timed(stage.curate, params, track=False)
            rows["whole curate() (writes files, card, PNGs)"].append(t)
    totals = result.totals
    print(f"{totals['read']} records read, {totals['kept']} kept; best of {args.repeats} runs\n")
    print("| step | seconds |\n| --- | --- |")
    for name, values in rows.items():
        print(f"| {name} | {min(values):.2f} |")


if __name__ == "__main__":
    main()
