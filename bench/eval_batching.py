"""How to batch the evaluation's generation: per category, in one pass, or continuously.

    .venv/bin/python bench/eval_batching.py --model models/grpo_trm --categories simple_python,parallel --limit 20

Times greedy generation of the same BFCL prompts three ways, with the evaluation's own generator
(`HFGenerator`: padded batches sorted by prompt length):
- per category, as the runner did before: each category ends in a part-filled batch;
- one pass over all categories, as the runner does now;
- transformers' continuous batching (`model.generate_batch`, paged KV cache): a finished row leaves the
  batch and the next prompt takes its place.
Prints seconds and how many completions match the one-pass ones.
"""

from __future__ import annotations

import argparse
import time

from transformers import GenerationConfig

from toolrl.end_of_turn import cut_at_end_of_turn
from toolrl.evaluation.bfcl import load_category
from toolrl.evaluation.generation import HFGenerator
from toolrl.hardware import resolve_dtype


def same(a: list[str], b: list[str]) -> int:
    return sum(x == y for x, y in zip(a, b, strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/grpo_trm")
    ap.add_argument("--categories", default="simple_python,parallel")
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=192)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--skip-continuous", action="store_true")
    args = ap.parse_args()

    cases = {c: load_category(c, args.limit) for c in args.categories.split(",")}
    prompts = [ex.messages for exs in cases.values() for ex in exs]
    gen = HFGenerator(args.model, args.batch_size, args.max_new_tokens, resolve_dtype(args.dtype))
    gen.generate(prompts[:1])  # warm-up

    start = time.perf_counter()
    per_category = [text for exs in cases.values() for text in gen.generate([ex.messages for ex in exs])]
    t_category = time.perf_counter() - start
    start = time.perf_counter()
    one_pass = gen.generate(prompts)
    t_pass = time.perf_counter() - start

    print(f"{len(prompts)} prompts, batch {args.batch_size}, dtype {resolve_dtype(args.dtype)}\n")
    print("| how | seconds | completions identical to one pass |")
    print("|---|---|---|")
    print(f"| per category | {t_category:.1f} | {same(per_category, one_pass)} / {len(prompts)} |")
    print(f"| one pass | {t_pass:.1f} | - |", flush=True)
    if args.skip_continuous:
        return
    ids = [gen.tokenizer(gen.render(m), add_special_tokens=False)["input_ids"] for m in prompts]
    config = GenerationConfig(do_sample=False, max_new_tokens=args.max_new_tokens, eos_token_id=gen.stop_ids,
                              pad_token_id=gen.tokenizer.pad_token_id)
    start = time.perf_counter()
    out = gen.model.generate_batch(inputs=ids, generation_config=config, progress_bar=False)
    t_cont = time.perf_counter() - start
    results = [out[f"req_{i}"] if f"req_{i}" in out else list(out.values())[i] for i in range(len(ids))]
    texts = [cut_at_end_of_turn(gen.tokenizer.decode(r.generated_tokens, skip_special_tokens=True)) for r in results]
    print(f"| continuous batching (generate_batch) | {t_cont:.1f} | "
          f"{same(texts, one_pass)} / {len(prompts)} |")


if __name__ == "__main__":
    main()
