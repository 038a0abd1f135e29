"""Peak memory of one shared-prefix loss pass at multi-turn shape (issue #17): where the 24 GB go.

The shared-prefix trainer's own pass (`SharedPrefixGRPOTrainer._group_logps`): the prompt once (batch 1,
with gradients), the group's rows' completions against its cache, TRL's fused LM head, backward.
Peak RSS is printed after the forward and after backward (one process per run: RSS only grows), and
the time of the whole pass.

    .venv/bin/python bench/loss_memory.py --model models/base --prompt 3500 --group 4 --completion 600
    .venv/bin/python bench/loss_memory.py ... --rows-at-once 1   # grpo.loss_rows_at_once: rows recomputed
    .venv/bin/python bench/loss_memory.py ... --pad 100   # right-pad rows 2..G by 100 tokens (a mask)
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import time
from types import SimpleNamespace

import torch


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def main() -> None:
    from trl.trainer.utils import add_fused_lm_head

    from toolrl.models import load_model
    from toolrl.training.shared_prefix import SharedPrefixGRPOTrainer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/base")
    parser.add_argument("--prompt", type=int, default=3500)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--completion", type=int, default=600)
    parser.add_argument("--rows-at-once", type=int, default=None)
    parser.add_argument("--pad", type=int, default=0)
    args = parser.parse_args()

    model, _ = load_model(args.model, dtype="float32")
    add_fused_lm_head(model, outputs=("log_probs", "entropy"))  # as GRPOTrainer does
    model.train()
    print(f"model loaded: peak RSS {peak_gb():.2f} GB")
    # The trainer's method needs only these two attributes of its trainer.
    trainer = SimpleNamespace(loss_rows_at_once=args.rows_at_once,
                              accelerator=SimpleNamespace(autocast=contextlib.nullcontext))
    start = time.perf_counter()
    prompt = torch.randint(100, 40000, (args.prompt,)).tolist()
    completions = torch.randint(100, 40000, (args.group, args.completion))
    mask = torch.ones_like(completions)
    if args.pad:
        mask[1:, -args.pad:] = 0
    log_probs, _ = SharedPrefixGRPOTrainer._group_logps(trainer, model, prompt, completions, mask)
    print(f"forward ({args.prompt}-token prompt once, {args.group} x {args.completion} completion tokens, "
          f"{args.rows_at_once or args.group} rows at once): peak RSS {peak_gb():.2f} GB")
    (log_probs * mask).sum().backward()
    print(f"backward: peak RSS {peak_gb():.2f} GB; {time.perf_counter() - start:.1f} s in all")


if __name__ == "__main__":
    main()
