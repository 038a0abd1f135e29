"""Generation throughput of a model against batch size, and the machine's matmul ceiling.

    .venv/bin/python bench/generation.py --model models/base --batch-sizes 1,4,8,16 --new-tokens 64

Prints a markdown table: batch size, generated tokens/s, seconds per batch, peak RSS. Then measures
fp32 matmul GFLOP/s (the hardware side) and derives the decode ceiling for the model: each generated
token costs about 2 x parameters FLOPs, so tokens/s <= GFLOP/s * 1e9 / (2 * params). Variants worth
trying are switches: --threads, --dtype bfloat16, --compile, --no-cache, --cache-implementation static
(a preallocated KV cache of fixed shape, what torch.compile wants), --prompt-tokens 550 (BFCL-like).

`--engines generate,shared,lean` compares, side by side at each batch size (the same prompt in every
row, as in a GRPO group; `--repeats` alternates the engines and keeps each one's fastest run):
transformers' `generate` (TRL's rollout path), `shared` (the prompt prefilled once, then `generate`:
`prefill_shared` below, the rollout engine before toolrl.decode) and `lean` (toolrl.decode: the shared
prefill, then its own decode loop) and `lookup` (`lean` checking up to 6 drafted tokens a row in each
pass, `decode.Lookup`, with no pool from earlier calls: drafts from the prompt and the batch's rows), with
the share of the compute ceiling measured in the same run. `lookup` needs `--sample`: the greedy runs fix
`min_new_tokens`, a processor under which `decode` checks no drafts (it is then `lean`); sampled, it draws
other tokens than the rest (the same distribution, other random draws), so compare tokens/s, not tokens.
bench/lookup.py measures drafts as GRPO uses them (curated prompts, a pool kept across steps).
`--data data/curated` takes a curated BFCL prompt instead of the padded built-in one; `--sample` samples
as GRPO does (temperature 1, the same seed for every engine, so all draw the same tokens) and stops
at the end of turn, so rows finish at different lengths. (CTranslate2 was measured here too and did
not pay: docs/BENCHMARKS.md.)
"""

from __future__ import annotations

import argparse
import resource
import time
from typing import Any

import torch

from toolrl.decode import LOOKUP_TOKENS
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


def _prompt_ids(tok, messages: list[dict[str, str]]) -> list[int]:
    return tok(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))["input_ids"]


def _config(tok, new_tokens: int, sample: bool):
    """Greedy with exactly `new_tokens` tokens, or GRPO's sampling (temperature 1) stopping at the end of turn."""
    from transformers import GenerationConfig

    if sample:
        return GenerationConfig(do_sample=True, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=new_tokens,
                                pad_token_id=tok.pad_token_id, eos_token_id=[tok.eos_token_id])
    return GenerationConfig(do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                            pad_token_id=tok.pad_token_id, eos_token_id=[tok.eos_token_id])


def prefill_shared(model: Any, prompt_ids: list[list[int]], pad_id: int) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """The `shared` engine's prefill (the rollout engine before toolrl.decode, then `generate`): a batch
    cache for these prompts that holds each distinct prompt's keys and values (all but its last token)
    computed once, left-padded with zeros; plus the left-padded ids and attention mask that
    `generate` takes with it. Every prompt needs two tokens or more."""
    from transformers import DynamicCache

    from toolrl.decode import prompt_cache

    device = model.device
    distinct = list(dict.fromkeys(tuple(p) for p in prompt_ids))
    width = max(len(p) for p in distinct) - 1
    layers: list[list[tuple[torch.Tensor, torch.Tensor]]] = []  # per distinct prompt, per layer
    for prompt in distinct:
        layers.append([(layer.keys, layer.values) for layer in prompt_cache(model, list(prompt[:-1]), device).layers])
    which = torch.tensor([distinct.index(tuple(p)) for p in prompt_ids], device=device)
    batch = DynamicCache(config=model.config)
    for i in range(len(layers[0])):
        def padded(t: torch.Tensor) -> torch.Tensor:
            return torch.cat([t.new_zeros(*t.shape[:2], width - t.size(2), t.size(3)), t], dim=2)
        keys = torch.cat([padded(layers[u][i][0]) for u in range(len(distinct))])[which]
        values = torch.cat([padded(layers[u][i][1]) for u in range(len(distinct))])[which]
        batch.update(keys, values, i)
    ids = torch.full((len(prompt_ids), width + 1), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompt_ids):
        ids[row, width + 1 - len(prompt):] = torch.tensor(prompt, device=device)
        mask[row, width + 1 - len(prompt):] = 1
    return batch, ids, mask


def run_engine(engine: str, model, tok, batch: int, messages: list[dict[str, str]], config,
               seed: int) -> tuple[int, float]:
    """One batch of `batch` rows of this prompt (a GRPO group): (generated tokens up to each row's stop, seconds).
    Every engine draws from the same seed, so sampled engines generate the same tokens."""
    from toolrl.decode import Lookup, decode

    ids = _prompt_ids(tok, messages)
    stops = set(config.eos_token_id)
    torch.manual_seed(seed)
    start = time.perf_counter()
    with torch.inference_mode():
        if engine == "generate":
            tok.padding_side = "left"
            inputs = tok.pad({"input_ids": [ids] * batch}, return_tensors="pt")
            out = model.generate(**inputs, generation_config=config)[:, len(ids):].tolist()
        elif engine == "shared":
            cache, input_ids, mask = prefill_shared(model, [ids] * batch, tok.pad_token_id)
            out = model.generate(input_ids=input_ids, attention_mask=mask, past_key_values=cache,
                                 generation_config=config)[:, input_ids.size(1):].tolist()
        elif engine == "lean":
            out = decode(model, [ids] * batch, config)
        elif engine == "lookup":  # a fresh pool: drafts from the prompt and the batch's own rows only
            out = decode(model, [ids] * batch, config, lookup=Lookup(LOOKUP_TOKENS))
        else:
            raise SystemExit(f"unknown engine {engine!r}: use generate, shared, lean, lookup")
    seconds = time.perf_counter() - start
    tokens = sum(next((i + 1 for i, t in enumerate(row) if t in stops), len(row)) for row in out)
    return tokens, seconds


def curated_messages(folder: str, index: int) -> list[dict[str, str]]:
    from toolrl.training.data import read_records, to_dataset

    return to_dataset(read_records(f"{folder}/train.jsonl", "rl", limit=index + 1), "rl")[index]["prompt"]


def compare_engines(args, model, tok, messages, length: int) -> None:
    engines = args.engines.split(",")
    params = sum(p.numel() for p in model.parameters())
    config = _config(tok, args.new_tokens, args.sample)
    for engine in engines:  # warm-up
        run_engine(engine, model, tok, 2, messages, _config(tok, 2, False), 0)
    best: dict[tuple[int, str], tuple[int, float]] = {}
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        for rep in range(args.repeats):  # engines alternate, the fastest of the repeats counts
            for engine in engines:
                tokens, secs = run_engine(engine, model, tok, batch, messages, config, args.seed)
                print((batch, engine, rep, tokens, round(secs, 2)), flush=True)
                if (batch, engine) not in best or secs < best[batch, engine][1]:
                    best[batch, engine] = (tokens, secs)
    mm = matmul_gflops(dtype=getattr(torch, args.dtype))
    ceiling = mm * 1e9 / (2 * params)
    decoding = (f"sampled (temperature 1, seed {args.seed}), up to {args.new_tokens} new tokens, stopping at "
                "the end of turn" if args.sample else f"{args.new_tokens} new tokens, greedy")
    print(f"\nmodel {args.model}: {params / 1e6:.1f} M params, {args.dtype}, threads {torch.get_num_threads()}, "
          f"prompt {length} tokens (the same in every row), {decoding}; fastest of {args.repeats}; "
          f"matmul 1024^3 {mm:.0f} GFLOP/s in this run -> compute ceiling {ceiling:.0f} tokens/s\n")
    print("| batch | engine | tokens | tokens/s | s/batch | speed-up over generate | share of the compute ceiling |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for (batch, engine), (tokens, secs) in best.items():
        ref = best[batch, engines[0]][1]
        tps = tokens / secs
        print(f"| {batch} | {engine} | {tokens} | {tps:.1f} | {secs:.2f} | {ref / secs:.2f}x | {tps / ceiling:.1%} |")


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
    ap.add_argument("--engines", default=None, help="compare engines side by side: generate,shared,lean")
    ap.add_argument("--repeats", type=int, default=1, help="with --engines: runs per engine (alternating); the fastest counts")
    ap.add_argument("--sample", action="store_true",
                    help="with --engines: sample as GRPO does (temperature 1, one seed for every engine) and stop at "
                         "the end of turn, instead of exactly --new-tokens greedy tokens")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=None,
                    help="with --engines: a curated data folder; the prompt is its train.jsonl record --data-index")
    ap.add_argument("--data-index", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tok = load_model(args.model, dtype=args.dtype)
    model.eval()
    if args.compile:
        model.forward = torch.compile(model.forward)
    params = sum(p.numel() for p in model.parameters())
    messages = curated_messages(args.data, args.data_index) if args.data else prompt_messages(tok, args.prompt_tokens)
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
