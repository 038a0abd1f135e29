"""TRM training step cost, side by side in one process: transformers' stock step against the trm stage's.

The same TRM (the base model under a fresh 2-way head), batches of `trm.model.per_device_train_batch_size`
records of `--data`, forward and backward under the stage's precision, the optimizer's zero_grad only (the
weights stay put, so every round sees the same model). The ways alternate `--rounds` times:

- stock: records in a seeded random order (the Trainer's sampler), right-padded with the padding mask;
- no mask: the same batches without the mask (toolrl.training.right_padding);
- shared prefix: the same batches, each prompt computed once per batch (toolrl.training.common_prefix);
- prompt-grouped: batches drawn prompt by prompt (`trm.model.group_by_prompt`, off by default;
  toolrl.trm.prefix_trainer) with the two above. Its batches hold other records than the first three's, so it also reports the tokens
  each way computes per step.

The scores at the labelled positions of the first prompt-grouped batch are compared in fp32 (the stock
forward with the mask against the shared prefix without it).

    .venv/bin/python bench/trm_step.py --data data/trm --model models/base --batches 4 --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/trm")
    parser.add_argument("--model", default="models/base")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    a = parser.parse_args()

    import torch
    from transformers import DataCollatorForTokenClassification

    from toolrl.config import load_params
    from toolrl.hardware import resolve_bf16
    from toolrl.training.common_prefix import shared_prefix_logits
    from toolrl.training.right_padding import causal_without_right_padding_mask
    from toolrl.trm.model import init_trm
    from toolrl.trm.prefix_trainer import PromptGroupSampler, prompt_index_groups
    from toolrl.trm.steps import IGNORE, read_steps
    from toolrl.trm.trainer import encode_records

    sec = load_params(a.params).trm.model
    bf16 = resolve_bf16(sec.bf16)
    model, tokenizer = init_trm(a.model, "float32", seed=sec.seed)
    tokenizer.padding_side = "right"
    size = sec.per_device_train_batch_size
    records = read_steps(Path(a.data) / "train.jsonl")
    random_order = torch.randperm(len(records), generator=torch.Generator().manual_seed(sec.seed)).tolist()
    grouped_order = list(PromptGroupSampler(prompt_index_groups(records), seed=sec.seed))
    collate = DataCollatorForTokenClassification(tokenizer)

    def batches(order: list[int]) -> list[dict]:
        chosen = [records[i] for i in order[: a.batches * size]]
        encoded = encode_records(tokenizer, chosen, sec.max_length, "encode", sec.keep_called_tool)
        return [collate([encoded[i] for i in range(j, j + size)]) for j in range(0, len(encoded), size)]

    random_batches, grouped_batches = batches(random_order), batches(grouped_order)
    fed: list[int] = []
    model.register_forward_pre_hook(lambda _m, _a, kw: fed.append(kw["input_ids"].numel()), with_kwargs=True)
    ways = {  # name: (batches, drop the mask, shared prefix)
        "stock (random batches, padding mask)": (random_batches, False, False),
        "no padding mask": (random_batches, True, False),
        "no mask + shared prefix": (random_batches, True, True),
        "no mask + shared prefix + prompt-grouped batches": (grouped_batches, True, True),
    }

    def step(batch: dict, drop: bool, shared: bool) -> None:
        hook = causal_without_right_padding_mask(model) if drop else None
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                if shared:
                    logits = shared_prefix_logits(model, batch["input_ids"], batch["attention_mask"])
                else:
                    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            labels = batch["labels"]
            torch.nn.functional.cross_entropy(logits[labels != IGNORE].float(), labels[labels != IGNORE]).backward()
            model.zero_grad()
        finally:
            if hook is not None:
                hook.remove()

    model.train()
    times: dict[str, list[float]] = {name: [] for name in ways}
    tokens: dict[str, list[int]] = {name: [] for name in ways}
    step(random_batches[0], False, False)  # warm-up
    for _ in range(a.rounds):
        for name, (chosen, drop, shared) in ways.items():
            for batch in chosen:
                fed.clear()
                start = time.perf_counter()
                step(batch, drop, shared)
                times[name].append(time.perf_counter() - start)
                tokens[name].append(sum(fed))
    model.eval()
    with torch.no_grad():
        first = grouped_batches[0]  # a batch whose prompts are shared
        at = first["labels"] != IGNORE
        stock = model(input_ids=first["input_ids"], attention_mask=first["attention_mask"]).logits[at]
        hook = causal_without_right_padding_mask(model)
        ours = shared_prefix_logits(model, first["input_ids"], first["attention_mask"])[at]
        hook.remove()
    print(f"bf16: {bf16}, {a.batches} batches of {size} a way; lengths: random "
          f"{[b['input_ids'].shape[1] for b in random_batches]}, grouped {[b['input_ids'].shape[1] for b in grouped_batches]}; "
          f"{a.rounds} rounds")
    print("| way | s / step (mean) | median | tokens computed / step | speed-up |\n|---|---|---|---|---|")
    base = statistics.mean(next(iter(times.values())))
    for name, t in times.items():
        print(f"| {name} | {statistics.mean(t):.2f} | {statistics.median(t):.2f} | "
              f"{statistics.mean(tokens[name]):.0f} | {base / statistics.mean(t):.2f}x |")
    print(f"fp32 scores at the labelled positions (stock against no mask + shared prefix), largest relative "
          f"difference: {((stock - ours).abs().max() / stock.abs().max()).item():.2e}")


if __name__ == "__main__":
    main()
