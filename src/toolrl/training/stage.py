"""One path for every trainer stage (SFT, GRPO, GRPO+TRM and the TRM itself), and the parts it is made of.

    prepare the output folder (resume, start over, or reuse a finished run) -> check the disk
    -> open the stage's MLflow run -> build the trainer -> train (from the last checkpoint) -> finish

Every stage returns one result type, `TrainResult`, which its done file also holds. A stage writes a
`TrainingStage` (`run_training` below): its name, section, start model and fingerprint, how to build
its trainer, and how to finish. The parts above it are what stages share: TrainingArguments fields,
LoRA, model folders, fingerprints, the output folder, the MLflow run, the final save and `finish`
(metrics, reports, the registered model, the done file).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from toolrl.config import LoraParams, Params, TrainCommon
from toolrl.hardware import precision_args
from toolrl.training import checkpoints, publish
from toolrl.training.checkpoints import DONE_FILE, OutputState
from toolrl.training.data import TrainingError, file_digest

# Section keys that change reporting or housekeeping, not what is trained: a restart with another
# value still resumes. (TrainingArguments such as save_steps are not among them: TRL's MLflow callback
# logs them as params again on resume, and MLflow refuses a changed param value.)
NOT_TRAINING = {"launch", "plots_file", "metrics_file", "register_as", "keep_checkpoints", "sample_every",
                "sample_rows", "probe_prompts", "probe_max_new_tokens", "threads"}


@dataclass
class TrainResult:
    stage: str
    output_dir: str
    global_step: int
    run_id: str | None
    metrics: dict[str, Any] = field(default_factory=dict)
    metrics_file: str | None = None
    plots_file: str | None = None
    plot_png: str | None = None
    model_uri: str | None = None
    resumed_from: str | None = None
    registered_model: str | None = None  # the MLflow registry's name and version, when registered
    version: int | None = None
    skipped: bool = False  # the output folder already held this finished run

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_main_process() -> bool:
    """Rank 0 of an `accelerate launch`/torchrun job, or a plain single process."""
    return os.environ.get("RANK", "0") == "0"


def set_threads(section: Any) -> None:
    if getattr(section, "threads", None):  # the TRM's section has none
        import torch

        torch.set_num_threads(section.threads)


def model_folder(path: str | Path, what: str, fix: str) -> Path:
    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{what} folder {path} has no config.json: {fix}")
    return path


def load_tokenizer(folder: Path) -> Any:
    """The tokenizer saved beside the model (toolrl.models fixed its chat template and special tokens)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if tokenizer.pad_token is None:
        raise TrainingError(f"the tokenizer in {folder} has no pad token: prepare the model with `toolrl model prepare`")
    return tokenizer


def lora_config(lora: LoraParams) -> Any:
    if not lora.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=lora.target_modules, task_type="CAUSAL_LM")


def trainer_args(section: TrainCommon, state: OutputState, stage: str, dtype: str) -> dict[str, Any]:
    """TrainingArguments fields shared by SFTConfig and GRPOConfig (TRL 1.16 / transformers 5 names)."""
    return {
        "output_dir": str(state.checkpoint_dir),
        "run_name": stage,
        "max_steps": section.max_steps,
        "learning_rate": section.learning_rate,
        "per_device_train_batch_size": section.per_device_train_batch_size,
        "gradient_accumulation_steps": section.gradient_accumulation_steps,
        "warmup_steps": section.warmup_ratio,  # a float in [0, 1) is a ratio in transformers 5
        "lr_scheduler_type": section.lr_scheduler_type,
        "weight_decay": section.weight_decay,
        "max_grad_norm": section.max_grad_norm,
        "logging_steps": section.logging_steps,
        "save_strategy": "steps",
        "save_steps": section.save_steps,
        "save_total_limit": section.save_total_limit,
        **precision_args(section.bf16),
        "activation_checkpointing": section.gradient_checkpointing,  # transformers 5 name
        "seed": section.seed,
        # TRL's MLflow callback logs into the run `tracked_run` opened (it starts its own only when
        # none is active), so trainer metrics and ours share one run.
        "report_to": ["mlflow"],
        "model_init_kwargs": {"dtype": dtype},
    }


def fingerprint(params: Params, stage: str, section: TrainCommon, data_file: Path, init: Path) -> dict[str, Any]:
    """What decides the trained weights: a restart with a different fingerprint starts over."""
    init_done = init / DONE_FILE
    return {
        "stage": stage,
        "section": section.model_dump(mode="json", exclude=NOT_TRAINING),
        "model": params.model.model_dump(mode="json"),
        "train_data": file_digest(data_file),
        "init": str(init),
        # A retrained init model (a new SFT run) must not be resumed into.
        "init_run": init_done.read_text() if init_done.exists() else None,
    }


def prepare_output(output_dir: str | Path, fingerprint: dict[str, Any], fresh: bool,
                   say: Any) -> OutputState:
    """`checkpoints.prepare_output` on the main process only; the others wait for it, then read the
    state it left (several processes clearing one folder would race)."""
    if os.environ.get("WORLD_SIZE", "1") == "1":
        return checkpoints.prepare_output(output_dir, fingerprint, fresh=fresh, say=say)
    from accelerate import PartialState

    process = PartialState()
    state = checkpoints.prepare_output(output_dir, fingerprint, fresh=fresh, say=say) if process.is_main_process else None
    process.wait_for_everyone()
    return state or checkpoints.read_output(output_dir)


@contextmanager
def tracked_run(params: Params, stage: str, checkpoint_dir: Path, section: TrainCommon) -> Iterator[Any]:
    """The stage's MLflow run on the main process (reopened after a crash: its id waits beside the
    checkpoints); nothing on the others."""
    if not is_main_process():
        yield None
        return
    from toolrl.tracking import stage_run

    with stage_run(params, stage, resume_dir=checkpoint_dir, log_params=section) as run:
        yield run


def save_final_model(trainer: Any, tokenizer: Any, lora: LoraParams, output_dir: Path) -> Any:
    """Write the final model as a plain transformers folder (LoRA adapters merged) and return it."""
    if lora.enabled and lora.merge:
        model = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
        if trainer.accelerator.is_main_process:
            model.save_pretrained(str(output_dir), safe_serialization=True)
            tokenizer.save_pretrained(str(output_dir))
        return model
    trainer.save_model(str(output_dir))  # gathers ZeRO-3 shards; saves the processing class too
    return trainer.accelerator.unwrap_model(trainer.model)


def log_metrics_now(stage: str, metrics: dict[str, Any], step: int) -> None:
    """Flat numeric metrics as `<stage>/<name>` on the active run (no-op without one)."""
    import mlflow

    from toolrl.dicts import numbers

    if mlflow.active_run() is None:
        return
    flat = numbers(metrics, stage, bools=False)
    if flat:
        mlflow.log_metrics(flat, step=step)


def finish(params: Params, section: TrainCommon, stage: str, state: OutputState, run: Any, model: Any,
           tokenizer: Any, metrics: dict[str, Any], png: Path | None) -> TrainResult:
    """Metrics file, reports and model logged to the run, model registered, run marked done."""
    return record(section, stage, state, run, metrics, png, section.keep_checkpoints,
                  lambda: publish.log_model(model, tokenizer, section.register_as, params.tracking))


def record(section: Any, stage: str, state: OutputState, run: Any, metrics: dict[str, Any], png: Path | None,
           keep_checkpoints: bool, log_model: Callable[[], dict[str, Any]]) -> TrainResult:
    """What every stage's finish ends with: the metrics file and reports logged to the run, the model
    logged and registered by `log_model` (its URI, name and version), the done file; the result."""
    import mlflow

    publish.write_metrics(section.metrics_file, metrics)
    for path in (section.plots_file, section.metrics_file, png):
        if path and Path(path).exists():
            mlflow.log_artifact(str(path), artifact_path="reports")
    logged = log_model()
    result = TrainResult(
        stage=stage, output_dir=str(state.output_dir), global_step=int(metrics["global_step"]),
        run_id=run.info.run_id, metrics=metrics, metrics_file=section.metrics_file,
        plots_file=section.plots_file, plot_png=str(png) if png else None, model_uri=logged.get("model_uri"),
        resumed_from=str(state.resume_from) if state.resume_from else None,
        registered_model=logged.get("registered_model"), version=logged.get("version"))
    checkpoints.mark_done(state.output_dir, result.to_dict(), keep_checkpoints)
    return result


# ---------------------------------------------------------------- the skeleton


@dataclass
class TrainingStage:
    name: str  # the MLflow run's name and the metrics' prefix
    what: str  # what the output folder holds, for messages ("SFT run", "TRM")
    section: Any  # the params section: output_dir, save_total_limit (and threads when it has them)
    init: Path  # the model training starts from (its size bounds the disk check)
    fingerprint: dict[str, Any]  # what decides the trained weights: another value starts over
    build: Callable[[OutputState], Any]  # the trainer, built inside the stage's MLflow run
    finish: Callable[[Any, OutputState, Any], TrainResult]  # (trainer, state, MLflow run) after training
    save_total_limit: int | None = None  # when the section has none (the TRM keeps a fixed number)


def run_training(params: Params, stage: TrainingStage, fresh: bool = False,
                 say: Callable[[str], None] = print) -> TrainResult:
    """Train (or resume, or reuse) `stage` into its section's output folder."""
    set_threads(stage.section)
    state = prepare_output(stage.section.output_dir, stage.fingerprint, fresh, say)
    if state.done:
        say(f"{state.output_dir} already holds this {stage.what} (use --fresh to retrain)")
        known = {f.name for f in fields(TrainResult)}  # a done file of an older version may hold more
        done = {k: v for k, v in checkpoints.read_done(state.output_dir).items() if k in known}
        return TrainResult(**{**done, "skipped": True})
    limit = stage.save_total_limit or stage.section.save_total_limit
    checkpoints.ensure_disk_space(state.output_dir, stage.init, limit, stage.name)
    with tracked_run(params, stage.name, state.checkpoint_dir, stage.section) as run:
        trainer = stage.build(state)
        if state.resume_from:
            say(f"resuming from {state.resume_from}")
        trainer.train(resume_from_checkpoint=str(state.resume_from) if state.resume_from else None)
        return stage.finish(trainer, state, run)
