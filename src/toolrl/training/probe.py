"""A quick held-out check of the output format: greedy completions on a few val prompts.

Not the evaluation (that is `toolrl.evaluation`, on the official benchmarks): a cheap before/after
signal logged with each SFT run, answering "does the model now write well-formed tool calls?".
Scores per prompt: the completion parses and is well formed (a <think> and a call or a response),
it holds a parseable call, and its set of tool names equals the target's.
"""

from __future__ import annotations

from typing import Any

from toolrl import formats
from toolrl.training.callbacks import call_stats


def expected_calls(record: dict[str, Any]) -> list[formats.ToolCall]:
    """The target's calls, from the RL view's ground truth or the SFT view's completion."""
    text = record.get("ground_truth")
    if not isinstance(text, str):
        text = formats.assistant_text(record["completion"])
    return formats.parse(text).calls


def score(completions: list[str], records: list[dict[str, Any]]) -> dict[str, float]:
    stats = call_stats(completions)
    name_hits, with_target = 0, 0
    for text, record in zip(completions, records, strict=True):
        target = {c.name for c in expected_calls(record)}
        if not target:
            continue
        with_target += 1
        parsed = formats.parse(text)
        name_hits += int(parsed.ok and {c.name for c in parsed.calls} == target)
    stats["name_match"] = name_hits / with_target if with_target else 0.0
    stats["prompts"] = float(len(completions))
    return stats


def generate(model: Any, tokenizer: Any, prompts: list[list[dict[str, str]]], max_new_tokens: int,
             batch_size: int = 8, desc: str = "probe", bf16: bool = False) -> list[str]:
    """Greedy completions of chat prompts, in batches, by the evaluation's greedy path
    (`toolrl.decode.complete`: the lean loop, `generate`'s tokens, tests/test_decode.py) with lookup drafts
    (greedy: the same tokens in fewer passes); under bf16 autocast when the training runs in bf16 (the
    probe's prefill is then 3x faster on a CPU with AMX)."""
    from contextlib import nullcontext

    import torch
    from tqdm.auto import tqdm
    from transformers import GenerationConfig

    from toolrl.decode import LOOKUP_TOKENS, Lookup, complete, prompt_ids

    config = GenerationConfig(do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=tokenizer.eos_token_id,
                              pad_token_id=tokenizer.pad_token_id)
    token_ids = prompt_ids(tokenizer, prompts)[1]
    was_training = model.training
    model.eval()
    out: list[str] = []
    lookup = Lookup(LOOKUP_TOKENS)
    try:
        for start in tqdm(range(0, len(prompts), batch_size), desc=desc, unit="batch"):
            autocast = torch.autocast(model.device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
            with torch.inference_mode(), autocast:
                new = complete(model, token_ids[start:start + batch_size], config, tokenizer.pad_token_id,
                               lookup=lookup)
            out += tokenizer.batch_decode(new, skip_special_tokens=True)
    finally:
        model.train(was_training)
    return out


def run_probe(model: Any, tokenizer: Any, records: list[dict[str, Any]], max_new_tokens: int,
              desc: str = "probe", bf16: bool = False) -> tuple[dict[str, float], dict[str, list[Any]]]:
    """(scores, table of completions) on `records` (canonical records with a prompt)."""
    completions = generate(model, tokenizer, [r["prompt"] for r in records], max_new_tokens, desc=desc, bf16=bf16)
    table = {
        "id": [str(r.get("id", i)) for i, r in enumerate(records)],
        "user": [r["prompt"][-1]["content"][-2000:] for r in records],
        "completion": completions,
        "target": [r.get("ground_truth") or formats.assistant_text(r["completion"]) for r in records],
        "parse_error": [formats.parse(c).error or "" for c in completions],
    }
    return score(completions, records), table
