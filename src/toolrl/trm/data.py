"""The `trm_data` stage: policy rollouts -> one labelled step record per tool call.

1. Take `trm.data.prompts` training prompts (`data/curated/train.jsonl`, a seeded sample).
2. Sample `samples_per_prompt` completions per prompt from the policy (`models/sft` by default; the
   base or GRPO model by `trm.data.policy`) with the lean decode loop (toolrl.decode: `generate`'s
   draws, each prompt prefilled once for its samples; temperature sampling).
3. Split each completion into its calls and label each call: rule labels by default, the LLM judge
   when `labeler: judge` (the rule label is kept beside it as `rule_label`). Judge failures go to
   `quarantine.jsonl` with their reason.
4. Add the reference calls as positives (`reference_positives`), and hard negatives made from every
   positive (`negatives.py`); drop exact duplicates (same prompt, prefix and call).
5. Split by prompt (all records of a prompt on one side) into train / val; balance the training
   labels to `positive_fraction` (and cap at `max_records`); val keeps what the policy produced.
6. Write `train.jsonl`, `val.jsonl`, `quarantine.jsonl`, `stats.json` and the data card `card.md`.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolrl.config import Params, TrmDataParams
from toolrl.jsonl import write_jsonl
from toolrl.trm.calls import call_spans
from toolrl.trm.labels import ground_truth_calls, rule_labels
from toolrl.trm.negatives import balance, hard_negatives
from toolrl.trm.steps import policy_steps

STAGE = "trm_data"
SPLITS = ("train", "val")


def policy_folder(params: Params) -> Path:
    """The model folder of the stage named by `trm.data.policy`."""
    folder = {"sft": params.sft.output_dir, "base": params.model.output_dir,
              "grpo": params.grpo.output_dir}[params.trm.data.policy]
    path = Path(folder)
    if not (path / "config.json").exists():
        stage = {"sft": "toolrl train sft", "base": "toolrl model prepare", "grpo": "toolrl train grpo"}
        raise FileNotFoundError(
            f"the {params.trm.data.policy} policy folder {path} has no config.json: run "
            f"`{stage[params.trm.data.policy]}` first, or pick another policy with -S trm.data.policy=base|sft|grpo")
    return path


def load_prompts(params: Params) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(sampled, reference-only): a seeded sample of `trm.data.prompts` curated training records (all of
    them when fewer), and up to `trm.data.reference_prompts` of the others, in file order."""
    from toolrl.training.data import read_records, split_path

    records = read_records(split_path(params.data.output_dir, "train"), "rl")
    sec = params.trm.data
    if len(records) < 2:
        raise ValueError(f"{params.data.output_dir}/train.jsonl has {len(records)} record(s): the TRM data needs "
                         "at least 2 prompts (one to validate on)")
    for i, rec in enumerate(records):
        rec.setdefault("id", f"train-{i}")
        rec["id"] = str(rec["id"])
    rng = random.Random(sec.seed)
    picked = rng.sample(records, min(sec.prompts, len(records)))
    chosen = {id(r) for r in picked}
    others = [r for r in records if id(r) not in chosen] if sec.reference_positives else []
    extra = others if sec.reference_prompts is None else others[:sec.reference_prompts]
    for rec in picked + extra:
        if not isinstance(rec.get("tools"), list):
            raise ValueError(f"curated record {rec['id']!r} has no `tools` list: the TRM labels need the canonical "
                             "schema (re-run `toolrl data curate`)")
    return picked, extra


def sample_completions(folder: Path, prompts: list[list[dict[str, str]]], sec: TrmDataParams,
                       desc: str = "sampling") -> list[list[str]]:
    """`samples_per_prompt` sampled completions per chat prompt: the lean decode loop (toolrl.decode:
    each prompt prefilled once for its samples; with `lookup_tokens` drafts checked in each pass, else
    `generate`'s tokens), or batched left-padded `generate` for a model the loop does not cover."""
    import torch
    from tqdm.auto import tqdm
    from transformers import GenerationConfig

    from toolrl import decode
    from toolrl.end_of_turn import cut_at_end_of_turn, stop_ids
    from toolrl.hardware import resolve_dtype
    from toolrl.models import load_model

    model, tokenizer = load_model(str(folder), dtype=resolve_dtype(sec.dtype))
    model.eval()
    tokenizer.padding_side = "left"
    torch.manual_seed(sec.seed)
    config = GenerationConfig(do_sample=True, temperature=sec.temperature, top_p=1.0, top_k=0,
                              max_new_tokens=sec.max_new_tokens, eos_token_id=stop_ids(tokenizer),
                              pad_token_id=tokenizer.pad_token_id)
    lean = decode.supported(model)
    lookup = decode.Lookup(sec.lookup_tokens) if sec.lookup_tokens else None  # one pool for the stage's samples
    per_batch = max(1, sec.generation_batch_size // sec.samples_per_prompt)
    out: list[list[str]] = []
    for start in tqdm(range(0, len(prompts), per_batch), desc=desc, unit="batch"):
        texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
                 for p in prompts[start:start + per_batch]]
        with torch.inference_mode():
            if lean:  # each prompt prefilled once for its samples; generate's draws without lookup (tests/test_decode.py)
                ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
                rows = decode.decode(model, [p for p in ids for _ in range(sec.samples_per_prompt)], config,
                                     lookup=lookup)
            else:
                enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
                rows = model.generate(**enc, generation_config=config, num_return_sequences=sec.samples_per_prompt
                                      )[:, enc["input_ids"].shape[1]:]
        texts_out = [cut_at_end_of_turn(t) for t in tokenizer.batch_decode(rows, skip_special_tokens=True)]
        for k in range(len(texts)):
            out.append(texts_out[k * sec.samples_per_prompt:(k + 1) * sec.samples_per_prompt])
    return out


def label_policy_steps(record: dict[str, Any], completions: list[str], stats: Counter) -> list[dict[str, Any]]:
    """Rule-labelled step records for every call of every sampled completion of one prompt."""
    gt = ground_truth_calls(record)
    steps: list[dict[str, Any]] = []
    for k, text in enumerate(completions):
        spans = call_spans(text)
        stats["completions"] += 1
        stats["completions_with_calls"] += int(bool(spans))
        stats["calls"] += len(spans)
        for step, verdict in zip(policy_steps(record["id"], k, record["prompt"], text, spans),
                                 rule_labels(spans, gt, record["tools"]), strict=True):
            stats[f"rule_reason/{verdict.reason.split(':')[0]}"] += 1
            steps.append({**step, "label": verdict.label, "necessity": verdict.necessity,
                          "quality": verdict.quality, "reason": verdict.reason, "rule_label": verdict.label,
                          "labeler": "rule"})
    return steps


def reference_steps(record: dict[str, Any], stats: Counter) -> list[dict[str, Any]]:
    """The reference calls as positive step records (in the reference answer's own context)."""
    text = record["ground_truth"]
    spans = call_spans(text)
    out = []
    for step, verdict in zip(policy_steps(record["id"], -1, record["prompt"], text, spans),
                             rule_labels(spans, ground_truth_calls(record), record["tools"]), strict=True):
        if not verdict.label:  # e.g. a reference call of a tool the record does not list
            stats["reference_not_positive"] += 1
            continue
        out.append({**step, "id": f"{record['id']}/ref/c{step['call_index']}", "source": "reference",
                    "label": 1, "necessity": 1, "quality": 1, "reason": "reference", "rule_label": 1,
                    "labeler": "rule"})
    return out


def apply_judge(steps: list[dict[str, Any]], records: dict[str, dict[str, Any]], sec: TrmDataParams,
                stats: Counter) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Relabel policy steps with the LLM judge; failures become quarantine entries."""
    from tqdm.auto import tqdm

    from toolrl.trm.judge import Judge

    items = [(s, records[s["prompt_id"]]["tools"], records[s["prompt_id"]]["ground_truth"]) for s in steps]
    with Judge(sec.judge) as judge, tqdm(total=len(items), desc="judge", unit="call") as bar:
        outcomes = judge.label_many(items, progress=lambda: bar.update(1))
    kept, quarantine = [], []
    for step, outcome in zip(steps, outcomes, strict=True):
        if outcome.verdict is None:
            stats["judge_failed"] += 1
            quarantine.append({"id": step["id"], "reason": outcome.error, "raw": outcome.raw,
                               "attempts": outcome.attempts, "step": step})
            continue
        v = outcome.verdict
        stats["judge_agrees_with_rule"] += int(v.label == step["rule_label"])
        kept.append({**step, "label": v.label, "necessity": v.necessity, "quality": v.quality,
                     "reason": v.reason, "labeler": "judge"})
    stats["judge_labelled"] = len(kept)
    return kept, quarantine


def dedupe(steps: list[dict[str, Any]], stats: Counter) -> list[dict[str, Any]]:
    seen: set[tuple[str, str, str, str]] = set()
    out = []
    for s in steps:
        # the prompt too: a multi-turn case reads the same call text in many contexts
        key = (s["prompt_id"], repr(s["prompt"]), s["prefix"], s["call"])
        if key in seen:
            stats["duplicates_dropped"] += 1
            continue
        seen.add(key)
        out.append(s)
    return out


def split_by_prompt(prompt_ids: list[str], val_fraction: float, seed: int) -> dict[str, str]:
    ids = sorted(set(prompt_ids))
    random.Random(seed).shuffle(ids)
    n_val = min(len(ids) - 1, max(1, round(val_fraction * len(ids))))
    return {pid: ("val" if i < n_val else "train") for i, pid in enumerate(ids)}


def build(params: Params, records: list[dict[str, Any]], completions: list[list[str]],
          say: Callable[[str], None] = print, reference_only: list[dict[str, Any]] | None = None,
          ) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]], dict]:
    """Label, add negatives, dedupe, split and balance. Returns ({split: records}, quarantine, stats).
    `reference_only`: prompts without policy samples, contributing their reference calls only."""
    sec = params.trm.data
    reference_only = reference_only or []
    stats: Counter = Counter()
    stats["prompts"] = len(records)
    stats["reference_only_prompts"] = len(reference_only)
    steps: list[dict[str, Any]] = []
    for record, texts in zip(records, completions, strict=True):
        steps += label_policy_steps(record, texts, stats)
    quarantine: list[dict[str, Any]] = []
    by_id = {r["id"]: r for r in records + reference_only}
    if sec.labeler == "judge" and steps:
        steps, quarantine = apply_judge(steps, by_id, sec, stats)
    if sec.reference_positives:
        for record in records + reference_only:
            steps += reference_steps(record, stats)
    rng = random.Random(sec.seed)
    negatives: list[dict[str, Any]] = []
    for step in steps:
        if step["label"] == 1 and sec.hard_negatives_per_call:
            record = by_id[step["prompt_id"]]
            negatives += hard_negatives(step, record["tools"], ground_truth_calls(record), list(sec.negative_kinds),
                                        sec.hard_negatives_per_call, rng, stats)
    steps = dedupe(steps + negatives, stats)
    side = split_by_prompt([r["id"] for r in records + reference_only], sec.val_fraction, sec.seed)
    splits = {name: [s for s in steps if side[s["prompt_id"]] == name] for name in SPLITS}
    before = len(splits["train"])
    splits["train"], dropped = balance(splits["train"], sec.positive_fraction, sec.max_records, rng)
    stats.update(dropped)
    say(f"trm data: {len(steps)} step records ({before} train before balancing, {len(splits['train'])} after; "
        f"{len(splits['val'])} val), {len(quarantine)} quarantined")
    return splits, quarantine, summarise(stats, splits, quarantine, sec)


def summarise(stats: Counter, splits: dict[str, list[dict[str, Any]]], quarantine: list[dict[str, Any]],
              sec: TrmDataParams) -> dict[str, Any]:
    out: dict[str, Any] = dict(sorted(stats.items()))
    out["mean_calls_per_completion"] = stats["calls"] / stats["completions"] if stats["completions"] else 0.0
    out["quarantined"] = len(quarantine)
    for name, recs in splits.items():
        pos = sum(r["label"] for r in recs)
        out[f"{name}/records"] = len(recs)
        out[f"{name}/positives"] = pos
        out[f"{name}/positive_fraction"] = pos / len(recs) if recs else 0.0
        for source, n in sorted(Counter(r["source"] for r in recs).items()):
            out[f"{name}/source/{source}"] = n
    out["labeler"] = sec.labeler
    return out


def run_trm_data(params: Params, say: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole stage; returns the stats it wrote."""
    import mlflow

    from toolrl.tracking import log_metrics, stage_run
    from toolrl.trm.card import write_card

    sec = params.trm.data
    folder = policy_folder(params)
    if sec.task == "multi_turn":
        from toolrl.trm.multi_turn import training_cases
        cases, replays = training_cases(params)
    else:
        records, reference_only = load_prompts(params)
    with stage_run(params, STAGE, log_params=sec) as run:
        if sec.task == "multi_turn":
            from toolrl.trm.multi_turn import build_multi_turn, sample_rollouts

            say(f"sampling {sec.samples_per_prompt} conversations for each of {len(cases)} multi-turn cases "
                f"from {folder}")
            rollouts, tokenizer = sample_rollouts(folder, cases, sec)
            splits, stats = build_multi_turn(params, rollouts, tokenizer, say, replays)
            quarantine = []
        else:
            say(f"sampling {sec.samples_per_prompt} completions for each of {len(records)} prompts from {folder}; "
                f"{len(reference_only)} more prompts add their reference calls only")
            completions = sample_completions(folder, [r["prompt"] for r in records], sec)
            splits, quarantine, stats = build(params, records, completions, say, reference_only)
        out = Path(sec.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name in SPLITS:
            write_jsonl(out / f"{name}.jsonl", splits[name])
        write_jsonl(out / "quarantine.jsonl", quarantine)
        stats["policy"] = sec.policy
        stats["policy_folder"] = str(folder)
        stats["mlflow_run_id"] = run.info.run_id
        (out / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
        write_card(out / "card.md", params, stats, splits)
        log_metrics(STAGE, {k: v for k, v in stats.items() if not isinstance(v, bool)})
        mlflow.log_artifact(str(out / "card.md"), artifact_path="data")
        mlflow.log_artifact(str(out / "stats.json"), artifact_path="data")
    return stats
