"""Peak memory of one shared-prefix loss pass at multi-turn shape (issue #17): where the 24 GB go.

The shared-prefix trainer's pass, reduced to its parts: the prompt once (batch 1, with gradients), its
cache repeated for the G rows, the rows' completions against it, a log-softmax over the vocabulary,
backward. Peak RSS is printed after each part (one process per run: RSS only grows).

    .venv/bin/python bench/loss_memory.py --model models/base --prompt 3500 --group 4 --completion 600
    .venv/bin/python bench/loss_memory.py ... --pad 100   # right-pad rows 2..G by 100 tokens (a mask)
"""

from __future__ import annotations

import argparse
import resource
import time

import torch


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def main() -> None:
    from toolrl.decode import prompt_cache
    from toolrl.models import load_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/base")
    parser.add_argument("--prompt", type=int, default=3500)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--completion", type=int, default=600)
    parser.add_argument("--pad", type=int, default=0)
    args = parser.parse_args()

    model, _ = load_model(args.model, dtype="float32")
    model.train()
    print(f"model loaded: peak RSS {peak_gb():.2f} GB")
    start = time.perf_counter()
    prompt = torch.randint(100, 40000, (args.prompt,)).tolist()
    cache = prompt_cache(model, prompt[:-1], model.device)
    print(f"prompt pass ({args.prompt} tokens, gradients on): peak RSS {peak_gb():.2f} GB")
    for layer in cache.layers:
        layer.keys = layer.keys.repeat_interleave(args.group, 0)
        layer.values = layer.values.repeat_interleave(args.group, 0)
    suffix = torch.randint(100, 40000, (args.group, args.completion))
    mask = torch.ones(args.group, args.prompt - 1 + args.completion, dtype=torch.long)
    if args.pad:
        mask[1:, -args.pad:] = 0
    out = model(input_ids=suffix, attention_mask=mask, past_key_values=cache, use_cache=True)
    loss = out.logits.float().log_softmax(-1).mean()
    print(f"completion pass ({args.group} x {args.completion} tokens against the cache): peak RSS {peak_gb():.2f} GB")
    loss.backward()
    print(f"backward: peak RSS {peak_gb():.2f} GB; {time.perf_counter() - start:.1f} s in all")


if __name__ == "__main__":
    main()
