"""Evaluation throughput of each generation backend: BFCL cases per second, and how far its greedy
completions agree with the reference backend (`hf`, transformers' `generate`).

    .venv/bin/python bench/eval_throughput.py --model base --categories simple_python,irrelevance \
        --limit 8 --backends hf,openvino --batch-sizes 8 [--max-new-tokens 192] [--threads 1] \
        [--openvino-seqs 32 --openvino-tokens 256]

Runs the evaluation runner itself (prompt rendering, batched greedy generation, grading) with a fresh
completion cache per row, so every case is generated; loading the model (an engine's own export
included) is timed apart and not in the rate. Prints a markdown table: backend, batch size, cases/s,
completion tokens/s, seconds, load seconds, correct, and the share of cases whose completion is
character for character the first backend's at the same batch size. Rows alternate backends, so
ratios are measured side by side.

A backend may carry a precision, `NAME@DTYPE` (`hf-generate@float32`): that row runs with `evaluate.dtype`
set to it (otherwise params' `evaluate.dtype`). After the table, each pair of rows' share of identical
completions: on bf16 hardware greedy completions of different kernels part ways where two logits tie in
bf16, so the float32 reference shows how much of a disagreement is bf16's own.

Besides the `evaluate.backend` names, `hf-generate` is the `hf` backend on transformers' own `generate`
instead of the lean decode loop: the evaluation path before the throughput work (issue #19's "today's
path"), kept in the code as the reference the exactness tests compare with; `hf-nolookup` is the lean
loop without lookup drafts (`evaluate.lookup_tokens=0`).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from toolrl.config import Params, load_params
from toolrl.evaluation.generation import HFGenerator, make_generator
from toolrl.evaluation.references import Skipped, resolve
from toolrl.evaluation.runner import evaluate_model, load_benchmarks
from toolrl.hardware import resolve_dtype


def one(base: Params, args: argparse.Namespace, row: str, bs: int) -> dict:
    from transformers import AutoTokenizer

    backend, _, dtype = row.partition("@")
    with tempfile.TemporaryDirectory() as cache:
        raw = base.model_dump()
        if dtype:
            raw["evaluate"]["dtype"] = dtype
        raw["evaluate"].update(models=[args.model], benchmarks=["bfcl"], limit=args.limit, batch_size=bs,
                               bfcl_categories=args.categories.split(","), max_new_tokens=args.max_new_tokens,
                               cache_dir=cache, threads=args.threads,
                               backend="hf" if backend.startswith("hf-") else backend)
        raw["evaluate"]["openvino"].update(max_num_seqs=args.openvino_seqs, max_num_batched_tokens=args.openvino_tokens)
        params = Params.model_validate(raw)
        model = resolve(args.model, params)
        if isinstance(model, Skipped):
            raise SystemExit(model.reason)
        cases, _ = load_benchmarks(params)
        loading: list[float] = []

        def timed_factory(folder, ev):
            started = time.perf_counter()
            if backend in ("hf-generate", "hf-nolookup"):
                generator = HFGenerator(folder, ev.batch_size, ev.max_new_tokens, resolve_dtype(ev.dtype),
                                        ev.threads, engine="generate" if backend == "hf-generate" else "lean")
            else:
                generator = make_generator(folder, ev)
            loading.append(time.perf_counter() - started)
            return generator

        result = evaluate_model(model, cases, params.evaluate, generator_factory=timed_factory)
        tok = AutoTokenizer.from_pretrained(str(model.folder))
        graded = [g for rows in result.graded.values() for g in rows]
        tokens = sum(len(tok(g.completion, add_special_tokens=False)["input_ids"]) for g in graded)
        secs = result.generation_seconds - sum(loading)
        return {"backend": row, "batch_size": bs, "cases_per_s": result.generated / secs,
                "tokens_per_s": tokens / secs, "seconds": secs, "load_seconds": sum(loading),
                "correct": sum(g.grade.correct for g in graded), "n": len(graded),
                "completions": {g.example.id: g.completion for g in graded}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="base", help="a model reference, as in evaluate.models")
    parser.add_argument("--categories", default="simple_python,irrelevance")
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--backends", default="hf",
                        help="comma-separated: hf, hf-generate, openvino, vllm, each optionally NAME@DTYPE")
    parser.add_argument("--batch-sizes", default="8")
    parser.add_argument("--max-new-tokens", type=int, default=192)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: one per core)")
    parser.add_argument("--openvino-seqs", type=int, default=32, help="evaluate.openvino.max_num_seqs")
    parser.add_argument("--openvino-tokens", type=int, default=256, help="evaluate.openvino.max_num_batched_tokens")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()

    base = load_params(args.params)
    backends = args.backends.split(",")
    rows = [one(base, args, backend, int(bs)) for bs in args.batch_sizes.split(",") for backend in backends]
    print("| backend | batch size | cases/s | completion tokens/s | seconds | load seconds | correct | same "
          f"completion as {backends[0]} | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ref = next(x for x in rows if x["backend"] == backends[0] and x["batch_size"] == r["batch_size"])
        same = sum(r["completions"][k] == v for k, v in ref["completions"].items()) / max(len(ref["completions"]), 1)
        print(f"| {r['backend']} | {r['batch_size']} | {r['cases_per_s']:.3f} | {r['tokens_per_s']:.1f} | "
              f"{r['seconds']:.1f} | {r['load_seconds']:.1f} | {r['correct']}/{r['n']} | {same:.0%} | "
              f"{ref['seconds'] / r['seconds']:.2f}x |")
    print("\nidentical completions, each pair of rows (same batch size):")
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            if a["batch_size"] == b["batch_size"]:
                same = sum(b["completions"].get(k) == v for k, v in a["completions"].items())
                print(f"  {a['backend']} ~ {b['backend']} (batch {a['batch_size']}): {same}/{len(a['completions'])}")


if __name__ == "__main__":
    main()
