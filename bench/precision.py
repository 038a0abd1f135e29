"""What bf16 buys on this machine: matmul GFLOP/s, a training step's forward+backward, and generation.

    .venv/bin/python bench/precision.py --model models/base

1. matmul GFLOP/s (2048 x 2048), float32 and bfloat16, 1 and 2 threads: the hardware ceiling.
2. forward+backward of the model on 4 x 600 tokens (a GRPO micro-batch), float32 and under bf16 autocast
   (what `bf16: true` does in the training stages), with the implied GFLOP/s (6 x params x tokens).
3. generation of a batch of 8 x 550-token prompts: prefill (1 new token) and 64 decoded tokens, with
   float32 weights, bf16 autocast, and bfloat16 weights (what `evaluate.dtype: bfloat16` loads).

Prints markdown tables (append them to docs/BENCHMARKS.md). Needs models/base (`toolrl model prepare`).
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
from generation import matmul_gflops  # bench/ is on sys.path when a bench script runs

from toolrl.models import load_model


def autocast(on: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if on else contextlib.nullcontext()


def train_step(model, ids: torch.Tensor, bf16: bool) -> float:
    start = time.perf_counter()
    with autocast(bf16):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def generate(model, ids: torch.Tensor, new_tokens: int, bf16: bool) -> float:
    start = time.perf_counter()
    with torch.inference_mode(), autocast(bf16):
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                       min_new_tokens=new_tokens, do_sample=False)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/base")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=2, help="timed repeats after one warm-up (best kept)")
    args = ap.parse_args()

    print("| dtype | threads | matmul GFLOP/s |\n|---|---|---|")
    for dtype in (torch.float32, torch.bfloat16):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            print(f"| {str(dtype).split('.')[1]} | {threads} | {matmul_gflops(2048, 10, dtype):.0f} |")
    torch.set_num_threads(args.threads)

    model, _ = load_model(args.model)
    params = sum(p.numel() for p in model.parameters())
    ids = torch.randint(0, model.config.vocab_size - 1, (4, 600))
    print(f"\nforward+backward, 4 x 600 tokens, {args.threads} threads ({params / 1e6:.0f}M parameters)\n")
    print("| precision | seconds | GFLOP/s (6 x params x tokens) |\n|---|---|---|")
    for bf16 in (False, True):
        train_step(model, ids, bf16)
        best = min(train_step(model, ids, bf16) for _ in range(args.repeats))
        print(f"| {'bf16 autocast' if bf16 else 'float32'} | {best:.2f} | {6 * params * ids.numel() / best / 1e9:.0f} |")

    prompts = torch.randint(0, model.config.vocab_size - 1, (8, 550))
    print(f"\ngeneration, batch 8 x 550 prompt tokens, greedy, {args.threads} threads\n")
    print("| weights | prefill (s) | 64 tokens (s) | decode tokens/s |\n|---|---|---|---|")
    for label, dtype, bf16 in (("float32", torch.float32, False), ("float32, bf16 autocast", torch.float32, True),
                               ("bfloat16", torch.bfloat16, False)):
        m = model.to(dtype)
        generate(m, prompts[:, :32], 2, bf16)  # warm-up
        prefill = min(generate(m, prompts, 1, bf16) for _ in range(args.repeats))
        full = min(generate(m, prompts, 64, bf16) for _ in range(args.repeats))
        print(f"| {label} | {prefill:.2f} | {full:.2f} | {8 * 63 / (full - prefill):.0f} |")


if __name__ == "__main__":
    main()
