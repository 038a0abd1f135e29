"""Generation throughput of a model against batch size, and the machine's matmul ceiling.

    .venv/bin/python bench/generation.py --model models/base --batch-sizes 1,4,8,16 --new-tokens 64

Prints a markdown table: batch size, generated tokens/s, seconds per batch, peak RSS. Then measures
fp32 matmul GFLOP/s (the hardware side) and derives the decode ceiling for the model: each generated
token costs about 2 x parameters FLOPs, so tokens/s <= GFLOP/s * 1e9 / (2 * params). Variants worth
trying are switches: --threads, --dtype bfloat16, --compile, --no-cache, --cache-implementation static
(a preallocated KV cache of fixed shape, what torch.compile wants), --prompt-tokens 550 (BFCL-like).

`--engines generate,shared` compares, side by side at each batch size (the same prompt in every row,
as in a GRPO group): transformers' `generate` (TRL's rollout path) and the shared-prefix rollout
(`toolrl.training.shared_prefix.prefill_shared`: the prompt prefilled once, then `generate`), with
the share of the compute ceiling measured in the same run. (CTranslate2 was measured here too and did
not pay: docs/BENCHMARKS.md.)
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from toolrl.models import load_model

PROMPT = [
    {"role": "system", "content": "You are a helpful assistant that calls tools."},
    {"role": "user", "content": "Find the weather in Paris tomorrow and convert 20 EUR to USD."},
]


def matmul_gflops(n: int = 1024, repeats: int = 20, dtype=torch.float32) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def gemv_gflops(n: int = 2048, repeats: int = 200, dtype=torch.float32) -> float:
    """Matrix-vector products: what batch-1 decoding does; bound by memory bandwidth, not FLOPs."""
    a, x = torch.randn(n, n, dtype=dtype), torch.randn(n, 1, dtype=dtype)
    for _ in range(5):
        a @ x
    start = time.perf_counter()
    for _ in range(repeats):
        a @ x
    return 2 * n * n * repeats / (time.perf_counter() - start) / 1e9


# One tool schema in the shape of BFCL's; repeated to pad the system prompt to a BFCL-like length.
TOOL = ('{"name": "get_weather", "description": "Current weather of a city, in the given units.", '
        '"parameters": {"type": "object", "properties": {"city": {"type": "string", "description": '
        '"City name, e.g. Paris"}, "units": {"type": "string", "enum": ["metric", "imperial"]}}, '
        '"required": ["city"]}}')


def prompt_messages(tok, prompt_tokens: int) -> list[dict[str, str]]:
    """PROMPT, its system message padded with tool schemas to about `prompt_tokens` (0: as is)."""
    messages = [dict(m) for m in PROMPT]
    while prompt_tokens and prompt_length(tok, messages) < prompt_tokens:
        messages[0]["content"] += "\n" + TOOL
    return messages


def prompt_length(tok, messages: list[dict[str, str]]) -> int:
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return len(tok(text)["input_ids"])


def run_batch(model, tok, batch: int, new_tokens: int, use_cache: bool,
              messages: list[dict[str, str]] = PROMPT, cache_implementation: str | None = None) -> tuple[float, float]:
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    tok.padding_side = "left"
    inputs = tok([text] * batch, return_tensors="pt", padding=True)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                             do_sample=False, use_cache=use_cache, pad_token_id=tok.pad_token_id,
                             cache_implementation=cache_implementation)
    seconds = time.perf_counter() - start
    generated = (out.shape[1] - inputs["input_ids"].shape[1]) * batch
    return generated / seconds, seconds


def run_shared(model, tok, batch: int, new_tokens: int, messages: list[dict[str, str]]) -> tuple[float, float]:
    from toolrl.training.shared_prefix import prefill_shared

    ids = tok(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))["input_ids"]
    start = time.perf_counter()
    with torch.inference_mode():
        cache, input_ids, mask = prefill_shared(model, [ids] * batch, tok.pad_token_id)
        out = model.generate(input_ids=input_ids, attention_mask=mask, past_key_values=cache, do_sample=False,
                             max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=tok.pad_token_id)
    seconds = time.perf_counter() - start
    return (out.shape[1] - input_ids.shape[1]) * batch / seconds, seconds


def compare_engines(args, model, tok, messages, length: int) -> None:
    engines = args.engines.split(",")
    params = sum(p.numel() for p in model.parameters())
    run_batch(model, tok, 1, 4, True, messages)
    rows = []
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        for engine in engines:
            if engine == "generate":
                tps, secs = run_batch(model, tok, batch, args.new_tokens, True, messages)
            elif engine == "shared":
                tps, secs = run_shared(model, tok, batch, args.new_tokens, messages)
            else:
                raise SystemExit(f"unknown engine {engine!r}: use generate, shared")
            rows.append((batch, engine, tps, secs))
            print(rows[-1], flush=True)
    mm = matmul_gflops(dtype=getattr(torch, args.dtype))
    ceiling = mm * 1e9 / (2 * params)
    print(f"\nmodel {args.model}: {params / 1e6:.1f} M params, {args.dtype}, threads {torch.get_num_threads()}, "
          f"prompt {length} tokens (the same in every row), {args.new_tokens} new tokens, greedy; matmul 1024^3 "
          f"{mm:.0f} GFLOP/s in this run -> compute ceiling {ceiling:.0f} tokens/s\n")
    print("| batch | engine | tokens/s | s/batch | speed-up over generate | share of the compute ceiling |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for batch, engine, tps, secs in rows:
        ref = next(r[3] for r in rows if r[0] == batch and r[1] == engines[0])
        print(f"| {batch} | {engine} | {tps:.1f} | {secs:.2f} | {ref / secs:.2f}x | {tps / ceiling:.1%} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/base")
    ap.add_argument("--batch-sizes", default="1,4,8,16")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--cache-implementation", default=None, choices=["dynamic", "static"],
                    help="transformers' KV cache: dynamic (the default, grows per token) or static (preallocated)")
    ap.add_argument("--prompt-tokens", type=int, default=0,
                    help="pad the prompt with tool schemas to about this many tokens (BFCL's are ~550); 0: ~40")
    ap.add_argument("--engines", default=None, help="compare engines side by side: generate,shared")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tok = load_model(args.model, dtype=args.dtype)
    model.eval()
    if args.compile:
        model.forward = torch.compile(model.forward)
    params = sum(p.numel() for p in model.parameters())
    messages = prompt_messages(tok, args.prompt_tokens)
    length = prompt_length(tok, messages)
    cache = args.cache_implementation
    if args.engines:
        compare_engines(args, model, tok, messages, length)
        return
    run_batch(model, tok, 1, 4, not args.no_cache, messages, cache)  # warm-up
    print(f"model {args.model}: {params / 1e6:.1f} M params, dtype {args.dtype}, threads "
          f"{torch.get_num_threads()}, cache {'off' if args.no_cache else cache or 'on'}, compile {args.compile}, "
          f"prompt {length} tokens, {args.new_tokens} new tokens\n")
    print("| batch | tokens/s | s/batch | peak RSS MB |")
    print("| ---: | ---: | ---: | ---: |")
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        tps, secs = run_batch(model, tok, batch, args.new_tokens, not args.no_cache, messages, cache)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"| {batch} | {tps:.1f} | {secs:.2f} | {rss:.0f} |", flush=True)
    mm = matmul_gflops(dtype=getattr(torch, args.dtype))
    mv = gemv_gflops(dtype=getattr(torch, args.dtype))
    print(f"\nmatmul 1024^3 {args.dtype}: {mm:.1f} GFLOP/s -> compute ceiling "
          f"{mm * 1e9 / (2 * params):.0f} tokens/s (2 FLOPs per parameter per token)")
    print(f"gemv 2048 {args.dtype}: {mv:.1f} GFLOP/s -> batch-1 ceiling {mv * 1e9 / (2 * params):.0f} tokens/s")


if __name__ == "__main__":
    main()
