"""Curated jsonl (`data/curated/{train,val,test}.jsonl`) -> the datasets TRL's trainers read.

Both views share the `prompt` messages (system prompt listing the tools + the dialogue so far):

- SFT view: `prompt` + `completion` (one assistant message): TRL's conversational prompt-completion
  format, so SFTTrainer can put the loss on the completion only.
- RL view: `prompt` + `ground_truth` (the string the reward reads) + `tools` (JSON text, for the
  schema-aware reward variants); GRPOTrainer passes every extra column to the reward functions as a
  keyword argument.

Multi-turn (the `bfcl_multi_turn` source, under `multi_turn/`): `train_rl.jsonl` holds one BFCL
training case per line (GRPO's `grpo.task: multi_turn` rebuilds the case from its `case_id`),
`train_sft.jsonl` one ground-truth conversation per line (`messages`), which SFT learns message by
message (`multi_turn_sft_records`).

A record that lacks what its view needs is an error naming the file, the line and the fix: training
on silently thinned data would hide a curation bug.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from toolrl.formats import messages_problem
from toolrl.jsonl import read_jsonl

if TYPE_CHECKING:
    from datasets import Dataset

View = Literal["sft", "rl"]
VIEW_COLUMNS: dict[str, tuple[str, ...]] = {"sft": ("prompt", "completion"), "rl": ("prompt", "ground_truth")}


class TrainingError(RuntimeError):
    """Something the user can fix before training (missing data or model, bad record)."""


def split_path(data_dir: str | Path, split: str) -> Path:
    path = Path(data_dir) / f"{split}.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `toolrl data curate` (or `dvc repro curate`) first, "
                                "or point data.output_dir at a folder with train/val/test.jsonl")
    return path


def check_record(record: Any, view: View) -> str | None:
    """Why `record` cannot feed `view`, or None when it can."""
    if not isinstance(record, dict):
        return "line is not a JSON object"
    for col in VIEW_COLUMNS[view]:
        if col not in record:
            return f"field {col!r} missing"
    problem = messages_problem(record["prompt"], "prompt")
    if problem:
        return problem
    if view == "sft":
        problem = messages_problem(record["completion"], "completion")
        if problem:
            return problem
        if [m["role"] for m in record["completion"]] != ["assistant"]:
            return "'completion' must be exactly one assistant message"
    elif not isinstance(record["ground_truth"], str):
        return "'ground_truth' must be a string"
    return None


def read_records(path: str | Path, view: View, limit: int | None = None) -> list[dict[str, Any]]:
    """The records of one curated jsonl file, checked for `view`; the first `limit` only if given."""
    path = Path(path)
    records: list[dict[str, Any]] = []
    for lineno, record in read_jsonl(path, "re-run `toolrl data curate`", TrainingError):
        problem = check_record(record, view)
        if problem:
            raise TrainingError(f"{path} line {lineno}: {problem}; the {view} view needs "
                                f"{', '.join(VIEW_COLUMNS[view])} in the canonical schema: re-run `toolrl data curate`")
        records.append(record)
        if limit is not None and len(records) >= limit:
            break
    if not records:
        raise TrainingError(f"{path} holds no records: re-run `toolrl data curate` with at least one source")
    return records


def to_dataset(records: list[dict[str, Any]], view: View) -> Dataset:
    """Keep the view's columns (plus `id` for traceability, `tools` for the RL view) as a datasets.Dataset."""
    from datasets import Dataset

    keep = (*VIEW_COLUMNS[view], "id")
    rows = [{k: r[k] for k in keep if k in r} for r in records]
    for i, (row, record) in enumerate(zip(rows, records, strict=True)):
        row["id"] = str(row.get("id", i))
        if view == "rl":
            # The schema-aware reward variants read the tools; JSON text keeps Arrow from unifying
            # every tool's parameter schema into one struct type.
            row["tools"] = json.dumps(record.get("tools") or [], ensure_ascii=False)
    return Dataset.from_list(rows)


def load_view(data_dir: str | Path, split: str, view: View, limit: int | None = None) -> Dataset:
    return to_dataset(read_records(split_path(data_dir, split), view, limit), view)


def is_no_call(record: dict[str, Any]) -> bool:
    """Whether a curated record's target has no tool call (the model should answer directly)."""
    target = record.get("target")
    if not isinstance(target, dict):
        raise TrainingError(f"record {record.get('id')!r} has no 'target' object, which the no-call mix reads: "
                            "re-run `toolrl data curate`")
    return not target.get("calls")


def no_call_mix(records: list[dict[str, Any]], share: float, seed: int) -> tuple[list[dict[str, Any]], int, int]:
    """`records` with their no-call records repeated (whole copies, then a seeded sample of the rest) or
    thinned (a seeded sample) until they are `share` of the result, call records kept as they are; a
    repeat's id gets `#r<k>`. Returns (records, no-call records before, no-call records after)."""
    import random

    calls: list[dict[str, Any]] = []
    no_call: list[dict[str, Any]] = []
    for r in records:
        (no_call if is_no_call(r) else calls).append(r)
    if not calls:
        raise TrainingError("every training record is a no-call record, so no share of them can be set: "
                            "curate data with tool calls, or set grpo.no_call_share to null")
    want = round(share * len(calls) / (1 - share))
    if want and not no_call:
        raise TrainingError(f"grpo.no_call_share={share} asks for no-call prompts, but the training set has none: "
                            "curate some (BFCL live irrelevance, data.mismatch_no_call) or set it to null")
    rng = random.Random(seed)
    whole, rest = divmod(want, len(no_call)) if no_call else (0, 0)
    mixed = [dict(r, id=f"{r.get('id')}#r{k}") if k else r for k in range(whole) for r in no_call]
    mixed += [dict(r, id=f"{r.get('id')}#r{whole}") if whole else r for r in rng.sample(no_call, rest)]
    return calls + mixed, len(no_call), len(mixed)


MULTI_TURN_DIR = "multi_turn"  # toolrl.data.curate writes the bfcl_multi_turn records there
MULTI_TURN_FIX = "add {name: bfcl_multi_turn} to data.sources and rerun curate (`toolrl data curate`)"


def multi_turn_path(data_dir: str | Path, kind: Literal["rl", "sft"]) -> Path:
    """`<data_dir>/multi_turn/train_rl.jsonl` or `train_sft.jsonl` (it may not exist)."""
    return Path(data_dir) / MULTI_TURN_DIR / f"train_{kind}.jsonl"


def read_multi_turn(path: Path, kind: Literal["rl", "sft"], limit: int | None = None) -> list[dict[str, Any]]:
    """The multi-turn records of one file (first `limit` only if given); a record without what training
    reads is an error naming the line. An empty file is an empty list: curation may hold every sampled
    case out for evaluation."""
    records: list[dict[str, Any]] = []
    for lineno, record in read_jsonl(path, "re-run `toolrl data curate`", TrainingError):
        problem = ("line is not a JSON object" if not isinstance(record, dict) else
                   None if isinstance(record.get("case_id"), str) else "field 'case_id' missing")
        if problem is None and kind == "sft":
            problem = messages_problem(record.get("messages"), "messages")
            if problem is None and record["messages"][-1]["role"] != "assistant":
                problem = "'messages' must end with an assistant message"
        if problem:
            raise TrainingError(f"{path} line {lineno}: {problem}: re-run `toolrl data curate`")
        records.append(record)
        if limit is not None and len(records) >= limit:
            break
    return records


def multi_turn_sft_examples(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One SFT-view example per assistant message of each conversation: the conversation so far is the
    prompt, the message the completion. So TRL's `completion_only_loss` puts the loss on the assistant's
    tokens only (tool results and user turns are context), with the same encoding as single-turn
    examples, which lets the two mix in one dataset."""
    out = []
    for record in records:
        messages = record["messages"]
        for i, msg in enumerate(messages):
            if msg["role"] == "assistant" and i > 0:
                out.append({"id": f"{record.get('id', record['case_id'])}#m{i}", "prompt": messages[:i],
                            "completion": [msg]})
    return out


def file_digest(path: str | Path) -> str:
    """sha256 of a data file: part of a run's fingerprint, so changed data is never resumed into."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _n_tokens(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> int:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def check_sft_lengths(dataset: Dataset, tokenizer: Any, max_length: int) -> int:
    """Fail on examples whose prompt alone fills `max_length` (TRL would drop them, fully masked, without
    a word); return how many lose the end of their completion to truncation (the caller warns)."""
    from tqdm.auto import tqdm

    too_long, clipped = [], 0
    for row in tqdm(dataset, desc="checking SFT lengths", unit="example", leave=False):
        prompt_len = _n_tokens(tokenizer, row["prompt"], True)
        if prompt_len >= max_length:
            too_long.append((row["id"], prompt_len))
        elif _n_tokens(tokenizer, row["prompt"] + row["completion"], False) > max_length:
            clipped += 1
    if too_long:
        shown = ", ".join(f"{i} ({n} tokens)" for i, n in too_long[:5])
        raise TrainingError(f"{len(too_long)} of {len(dataset)} SFT examples have prompts of max_length "
                            f"({max_length}) tokens or more, leaving no completion to learn: {shown}. Raise "
                            "sft.max_length or lower data.max_prompt_tokens and re-curate")
    return clipped


def fit_multi_turn(examples: list[dict[str, Any]], tokenizer: Any, max_length: int) -> tuple[list[dict[str, Any]], int]:
    """The multi-turn SFT examples that fit `max_length` whole, and how many do not. A later message's prompt
    holds the whole conversation before it (a BFCL opening alone is ~1-4k tokens), so cutting would leave
    its message without an end, or without the message at all (TRL then drops it silently): an example that
    does not fit is left out and counted instead; none fitting at all is an error."""
    kept, sizes = [], []
    for ex in examples:
        n = _n_tokens(tokenizer, ex["prompt"] + ex["completion"], False)
        if n <= max_length:
            kept.append(ex)
        sizes.append(n)
    if examples and not kept:
        raise TrainingError(f"none of the {len(examples)} multi-turn SFT examples (one per assistant message) fits "
                            f"sft.max_length={max_length} tokens; the shortest has {min(sizes)}: raise sft.max_length "
                            "(the model's context allowing; SmolLM2: 8192)")
    return kept, len(examples) - len(kept)
