"""The SFT baseline (ToolRL's SFT400/SFT4k analogue): TRL SFTTrainer on the curated SFT view.

Conversational prompt-completion records, so the loss falls on the completion only
(`completion_only_loss`). Full fine-tune by default; `sft.lora.enabled` trains LoRA adapters and
merges them at the end, so `models/sft/` is always a plain transformers folder with its tokenizer.
A held-out probe (greedy completions on a few val prompts) scores the output format before and
after training.

Multi-turn: when curation wrote BFCL multi-turn conversations (`multi_turn/train_sft.jsonl`, the
`bfcl_multi_turn` source), SFT learns them too, one example per assistant message with the
conversation so far as its prompt (`data.multi_turn_sft_examples`). The data decides, not a switch:
the source list already says whether multi-turn data is wanted, and a second switch could only
contradict it. Examples that do not fit `sft.max_length` whole are left out and counted
(`multi_turn_left_out` in the metrics).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolrl.config import Params
from toolrl.hardware import resolve_bf16
from toolrl.training import checkpoints, publish, stage
from toolrl.training.callbacks import StageCallback
from toolrl.training.data import (
    check_sft_lengths,
    file_digest,
    fit_multi_turn,
    load_view,
    multi_turn_path,
    multi_turn_sft_examples,
    read_multi_turn,
    read_records,
    split_path,
    to_dataset,
)

STAGE = "sft"
PROBE_BEFORE = "probe_before.json"


def _probe(model: Any, tokenizer: Any, records: list[dict[str, Any]], max_new_tokens: int,
           when: str, step: int, bf16: bool) -> dict[str, float]:
    from toolrl.training.callbacks import log_table
    from toolrl.training.probe import run_probe

    scores, table = run_probe(model, tokenizer, records, max_new_tokens, desc=f"probe {when}", bf16=bf16)
    stage.log_metrics_now(STAGE, {f"probe_{when}": scores}, step)
    log_table(table, f"samples/sft_probe_{when}.json")
    return scores


def build_trainer(params: Params, state: checkpoints.OutputState, base: Path, train: Any, tokenizer: Any,
                  callbacks: list[Any]) -> Any:
    """TRL's SFTTrainer for these params (the model is loaded from its folder inside the trainer), with
    the savings of toolrl.training.sft_trainer."""
    from trl import SFTConfig

    from toolrl.training.sft_trainer import LeanSFTTrainer

    sec = params.sft
    args = SFTConfig(
        **stage.trainer_args(sec, state, STAGE, params.model.dtype),
        num_train_epochs=sec.num_train_epochs,
        max_length=sec.max_length,
        completion_only_loss=sec.completion_only_loss,
    )
    return LeanSFTTrainer(model=str(base), args=args, train_dataset=train, processing_class=tokenizer,
                      peft_config=stage.lora_config(sec.lora), callbacks=callbacks)


def run_sft(params: Params, fresh: bool = False, say: Callable[[str], None] = print) -> stage.TrainResult:
    """Train (or resume, or reuse) the SFT model of these params into `sft.output_dir`."""
    sec = params.sft
    train_file = split_path(params.data.output_dir, "train")
    base = stage.model_folder(params.model.output_dir, "base model",
                               "run `toolrl model prepare` (or `dvc repro prepare_model`) first")
    multi_file = multi_turn_path(params.data.output_dir, "sft")
    callback = StageCallback(STAGE, sec.plots_file)
    probe_records: list[dict[str, Any]] = []
    tokenizer: Any = None
    counts: dict[str, int] = {}

    def build(state: checkpoints.OutputState) -> Any:
        nonlocal probe_records, tokenizer
        train = load_view(params.data.output_dir, "train", "sft", sec.train_limit)
        probe_records = (read_records(split_path(params.data.output_dir, "val"), "sft", sec.probe_prompts)
                         if sec.probe_prompts else [])
        tokenizer = stage.load_tokenizer(base)
        clipped = check_sft_lengths(train, tokenizer, sec.max_length)
        if clipped:
            say(f"warning: {clipped} of {len(train)} SFT examples are longer than sft.max_length={sec.max_length} "
                "tokens: the end of their completion is cut off")
        if multi_file.exists():
            train = with_multi_turn(train, multi_file, tokenizer, sec.max_length, sec.train_limit, counts, say)
        trainer = build_trainer(params, state, base, train, tokenizer, [callback])
        # Probes run on every process: under ZeRO-3 generation needs all the shards; rank 0 records.
        before_file = state.output_dir / PROBE_BEFORE
        if probe_records and not before_file.exists():
            before = _probe(trainer.model, tokenizer, probe_records, sec.probe_max_new_tokens, "before", 0,
                            resolve_bf16(sec.bf16))
            if stage.is_main_process():
                before_file.write_text(json.dumps(before))
        return trainer

    def finish(trainer: Any, state: checkpoints.OutputState, run: Any) -> stage.TrainResult:
        model = stage.save_final_model(trainer, tokenizer, sec.lora, state.output_dir)
        step = trainer.state.global_step
        after = _probe(model, tokenizer, probe_records, sec.probe_max_new_tokens, "after", step,
                       resolve_bf16(sec.bf16)) if probe_records else None
        if not stage.is_main_process():
            return stage.TrainResult(STAGE, str(state.output_dir), step, None)
        metrics: dict[str, Any] = {"global_step": step, **counts, **_loss_summary(callback, sec.plots_file)}
        if after is not None:
            before_file = state.output_dir / PROBE_BEFORE
            metrics["probe_before"] = json.loads(before_file.read_text()) if before_file.exists() else {}
            metrics["probe_after"] = after
        png = publish.plot_columns(sec.plots_file, Path(sec.plots_file).with_suffix(".png"), ["loss"], "SFT loss")
        return stage.finish(params, sec, STAGE, state, run, model, tokenizer, metrics, png)

    fp = stage.fingerprint(params, STAGE, sec, train_file, base)
    if multi_file.exists():  # changed multi-turn data must not be resumed into either
        fp["multi_turn_data"] = file_digest(multi_file)
    spec = stage.TrainingStage(STAGE, "SFT run", sec, base, fp, build, finish)
    return stage.run_training(params, spec, fresh, say)


def with_multi_turn(train: Any, path: Path, tokenizer: Any, max_length: int, limit: int | None,
                    counts: dict[str, int], say: Callable[[str], None] = print) -> Any:
    """`train` plus one example per assistant message of the curated multi-turn conversations that fit
    `max_length` (`limit`, sft.train_limit, counts conversations here); `counts` gets what was used and
    left out."""
    from datasets import concatenate_datasets

    conversations = read_multi_turn(path, "sft", limit)
    examples, left_out = fit_multi_turn(multi_turn_sft_examples(conversations), tokenizer, max_length)
    counts.update(multi_turn_conversations=len(conversations), multi_turn_examples=len(examples),
                  multi_turn_left_out=left_out)
    if left_out:
        say(f"warning: {left_out} of {left_out + len(examples)} multi-turn SFT examples (one per assistant message) "
            f"are longer than sft.max_length={max_length} tokens and are left out: raise sft.max_length to keep them")
    if not examples:
        return train
    say(f"SFT on {len(train)} single-turn examples and {len(examples)} assistant messages of "
        f"{len(conversations)} multi-turn conversations")
    return concatenate_datasets([train, to_dataset(examples, "sft")])


def _loss_summary(callback: StageCallback, plots_file: str) -> dict[str, float]:
    rows = publish.read_csv(plots_file) if Path(plots_file).exists() else []
    losses = [float(r["loss"]) for r in rows if r.get("loss")]
    out = {k: v for k, v in callback.summary.items() if k in ("train_loss", "train_runtime")}
    if losses:
        k = max(1, len(losses) // 5)
        out.update(loss_first=sum(losses[:k]) / k, loss_last=sum(losses[-k:]) / k)
    return out
