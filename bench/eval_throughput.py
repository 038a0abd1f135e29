"""Evaluation throughput: BFCL cases completed per second against generation batch size.

    .venv/bin/python bench/eval_throughput.py --model base --categories simple_python,irrelevance \
        --limit 8 --batch-sizes 1,4,8 [--max-new-tokens 192] [--threads 1]

Runs the evaluation runner itself (prompt rendering, batched greedy generation, grading) with a fresh
completion cache per batch size, so every case is generated. Prints a markdown table: batch size,
cases/s, completion tokens/s, seconds, and accuracy (the same at every batch size up to float
rounding: a check that batching does not change what is generated). Model loading is not timed.
"""

from __future__ import annotations

import argparse
import tempfile

from toolrl.config import Params, load_params
from toolrl.evaluation.references import Skipped, resolve
from toolrl.evaluation.runner import evaluate_model, load_benchmarks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="base", help="a model reference, as in evaluate.models")
    parser.add_argument("--categories", default="simple_python,irrelevance")
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--batch-sizes", default="1,4,8")
    parser.add_argument("--max-new-tokens", type=int, default=192)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()

    base = load_params(args.params)
    rows = []
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        with tempfile.TemporaryDirectory() as cache:
            raw = base.model_dump()
            raw["evaluate"].update(models=[args.model], benchmarks=["bfcl"], limit=args.limit, batch_size=bs,
                                   bfcl_categories=args.categories.split(","), max_new_tokens=args.max_new_tokens,
                                   cache_dir=cache, threads=args.threads)
            params = Params.model_validate(raw)
            model = resolve(args.model, params)
            if isinstance(model, Skipped):
                raise SystemExit(model.reason)
            cases, _ = load_benchmarks(params)
            result = evaluate_model(model, cases, params.evaluate)
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(str(model.folder))
            texts = [g.completion for rows_ in result.graded.values() for g in rows_]
            tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)
            correct = sum(g.outcome.correct for rows_ in result.graded.values() for g in rows_)
            secs = result.generation_seconds
            rows.append((bs, result.generated / secs, tokens / secs, secs, correct, len(texts)))
    print("| batch size | cases/s | completion tokens/s | seconds | correct |")
    print("|---|---|---|---|---|")
    for bs, cps, tps, secs, correct, n in rows:
        print(f"| {bs} | {cps:.3f} | {tps:.1f} | {secs:.1f} | {correct}/{n} |")


if __name__ == "__main__":
    main()
