"""TRM training step cost: right-padded batches with their padding mask (transformers' default) against
without it (toolrl.training.right_padding, what the trm stage does), side by side in one process.

The same TRM (the base model under a fresh 2-way head), the same batches of `trm.model` records, forward
and backward under the stage's precision, the optimizer's zero_grad only (the weights stay put, so every
round sees the same model); the two ways alternate `--rounds` times. The scores at the labelled positions
of the first batch are compared in fp32.

    .venv/bin/python bench/trm_step.py --data data/trm --model models/base --batches 3 --rounds 2
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
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    a = parser.parse_args()

    import torch
    from transformers import DataCollatorForTokenClassification

    from toolrl.config import load_params
    from toolrl.hardware import resolve_bf16
    from toolrl.training.right_padding import _drop_mask
    from toolrl.trm.model import init_trm
    from toolrl.trm.steps import IGNORE, read_steps
    from toolrl.trm.trainer import encode_records

    sec = load_params(a.params).trm.model
    bf16 = resolve_bf16(sec.bf16)
    model, tokenizer = init_trm(a.model, "float32", seed=sec.seed)
    tokenizer.padding_side = "right"
    size = sec.per_device_train_batch_size
    records = read_steps(Path(a.data) / "train.jsonl")[: a.batches * size]
    encoded = encode_records(tokenizer, records, sec.max_length, "encode", sec.keep_called_tool)
    collate = DataCollatorForTokenClassification(tokenizer)
    batches = [collate([encoded[i] for i in range(j, j + size)]) for j in range(0, len(encoded), size)]

    def step(batch: dict, drop: bool) -> None:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        if drop:
            inputs = _drop_mask(model, (), inputs)[1]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(**inputs).logits
        labels = batch["labels"]
        torch.nn.functional.cross_entropy(logits[labels != IGNORE].float(), labels[labels != IGNORE]).backward()
        model.zero_grad()

    model.train()
    times: dict[str, list[float]] = {"with the padding mask (transformers)": [], "without it (ours)": []}
    step(batches[0], False)  # warm-up
    for _ in range(a.rounds):
        for name, drop in zip(times, (False, True), strict=True):
            for batch in batches:
                start = time.perf_counter()
                step(batch, drop)
                times[name].append(time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
        first = {k: v for k, v in batches[0].items() if k != "labels"}
        at = batches[0]["labels"] != IGNORE
        masked = model(**first).logits[at]
        unmasked = model(**_drop_mask(model, (), first)[1]).logits[at]
    print(f"bf16: {bf16}, {len(batches)} batches of {size} (lengths {[b['input_ids'].shape[1] for b in batches]}), "
          f"{a.rounds} rounds")
    print("| attention | s / step (mean) | median | speed-up |\n|---|---|---|---|")
    base = statistics.mean(next(iter(times.values())))
    for name, t in times.items():
        print(f"| {name} | {statistics.mean(t):.2f} | {statistics.median(t):.2f} | {base / statistics.mean(t):.2f}x |")
    print(f"fp32 scores at the labelled positions, largest relative difference: "
          f"{((masked - unmasked).abs().max() / masked.abs().max()).item():.2e}")


if __name__ == "__main__":
    main()
