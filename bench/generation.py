"""Generation throughput of a model against batch size, and the machine's matmul ceiling.

    .venv/bin/python bench/generation.py --model models/base --batch-sizes 1,4,8,16 --new-tokens 64

Prints a markdown table: batch size, generated tokens/s, seconds per batch, peak RSS. Then measures
fp32 matmul GFLOP/s (the hardware side) and derives the decode ceiling for the model: each generated
token costs about 2 x parameters FLOPs, so tokens/s <= GFLOP/s * 1e9 / (2 * params). Variants worth
trying are switches: --threads, --dtype bfloat16, --compile, --no-cache, --cache-implementation static
(a preallocated KV cache of fixed shape, what torch.compile wants), --prompt-tokens 550 (BFCL-like).
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
