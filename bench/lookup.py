"""Rollout generation with lookup drafts (`grpo.lookup_tokens`) against the lean loop, as GRPO draws it.

    .venv/bin/python bench/lookup.py --model models/sft --tokens 0,2,4,6 --steps 4

Each step takes the next two curated prompts (`--data`/train.jsonl) x 4 rows (the default 2 x 4 layout),
samples at temperature 1 up to `--new-tokens`, stopping at the end of turn, and runs every setting on
the same rows from the same seed, one after the other. `0` is `toolrl.decode`'s lean loop; `N` checks up
to N drafted tokens a row in each pass with one `Lookup` kept across steps, as the trainer keeps it (so
a step drafts from the earlier steps' completions too). The first step is warm-up and left out. Prints,
per setting, tokens/s, tokens per row-pass, and the ratio to the lean loop. Sampled tokens differ between
settings (the same distribution, other random draws), so compare rates, not tokens.
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/sft")
    parser.add_argument("--data", default="data/curated")
    parser.add_argument("--tokens", default="0,2,4,6", help="lookup_tokens settings, 0 = the lean loop")
    parser.add_argument("--steps", type=int, default=4, help="steps (the first is warm-up)")
    parser.add_argument("--new-tokens", type=int, default=96)
    parser.add_argument("--dtype", default="auto", help="float32, bfloat16 or auto (grpo.generation_dtype)")
    args = parser.parse_args()

    from transformers import GenerationConfig

    from toolrl.decode import Lookup, decode
    from toolrl.end_of_turn import stop_ids
    from toolrl.hardware import resolve_dtype
    from toolrl.models import load_model
    from toolrl.training.data import read_records, to_dataset

    settings = [int(k) for k in args.tokens.split(",")]
    model, tok = load_model(args.model, dtype=resolve_dtype(args.dtype))
    model.eval()
    records = to_dataset(read_records(f"{args.data}/train.jsonl", "rl", limit=2 * args.steps), "rl")
    ids = [tok(tok.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False),
               add_special_tokens=False)["input_ids"] for r in records]
    config = GenerationConfig(do_sample=True, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=args.new_tokens,
                              pad_token_id=tok.pad_token_id, eos_token_id=stop_ids(tok))
    lookups = {k: Lookup(k) for k in settings if k}
    totals = {k: [0.0, 0, 0, 0] for k in settings}  # seconds, tokens, emitted, passes (measured steps)
    with torch.inference_mode():
        for step in range(args.steps):
            rows = [ids[2 * step]] * 4 + [ids[2 * step + 1]] * 4
            for k in settings:
                lookup = lookups.get(k)
                before = (lookup.emitted, lookup.passes) if lookup else (0, 0)
                torch.manual_seed(step)
                start = time.perf_counter()
                out = decode(model, rows, config, lookup=lookup)
                seconds = time.perf_counter() - start
                tokens = sum(len(c) for c in out)
                print(f"step {step} tokens {k}: {tokens} in {seconds:.1f} s", flush=True)
                if step:
                    t = totals[k]
                    t[0] += seconds
                    t[1] += tokens
                    if lookup:
                        t[2] += lookup.emitted - before[0]
                        t[3] += lookup.passes - before[1]
    lean = totals[settings[0]][1] / totals[settings[0]][0]
    print(f"\nmodel {args.model}, {model.dtype}, threads {torch.get_num_threads()}, 2 prompts x 4 rows a step, "
          f"{args.steps - 1} steps measured, up to {args.new_tokens} new tokens\n")
    print("| lookup_tokens | tokens | seconds | tokens/s | tokens per row-pass | against the first row |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for k in settings:
        seconds, tokens, emitted, passes = totals[k]
        per_pass = f"{emitted / passes:.2f}" if passes else "1.00"
        print(f"| {k} | {tokens} | {seconds:.1f} | {tokens / seconds:.1f} | {per_pass} | "
              f"{tokens / seconds / lean:.2f}x |")


if __name__ == "__main__":
    main()
