"""What the training sections (`sft`, `grpo`) share: LoRA, the launch, the trainer settings."""

from __future__ import annotations

from pydantic import Field

from toolrl.hardware import Bf16Setting
from toolrl.schema.base import Section


class LoraParams(Section):
    enabled: bool = False
    r: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"
    merge: bool = Field(default=True,
        description="merge the adapters at the end, so the output is a plain transformers folder")


class LaunchParams(Section):
    """How `toolrl train <stage>` starts the training process (see docs/TRAINING.md, the GPU path).

    No accelerate config: the training runs inside the CLI process (CPU, one GPU). With one, the CLI
    runs `accelerate launch --config_file <it> -m toolrl.training.launch <stage> ...` instead.
    """

    accelerate_config: str | None = Field(default=None,
        description="e.g. infra/accelerate/multi_gpu.yaml, infra/deepspeed/zero2.yaml")
    num_processes: int | None = Field(default=None, ge=1,
        description="overrides the config file's num_processes")
    cuda_visible_devices: str | None = Field(default=None,
        description='GPUs of the training processes, e.g. "1,2,3"')
    main_process_port: int | None = Field(default=None, ge=1, le=65535)


class TrainCommon(Section):
    output_dir: str
    max_steps: int = Field(default=100, ge=1)
    learning_rate: float = Field(default=1e-5, gt=0)
    per_device_train_batch_size: int = Field(default=4, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1,
        description="passed as transformers 5's fractional warmup_steps")
    lr_scheduler_type: str = "constant"
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    logging_steps: int = Field(default=1, ge=1)
    save_steps: int = Field(default=25, ge=1)
    save_total_limit: int = Field(default=2, ge=1)
    keep_checkpoints: bool = Field(default=False,
        description="False: delete <output_dir>.checkpoints (beside the model) once the final model is saved")
    bf16: Bf16Setting = Field(default="auto", description=(
        "Mixed precision (autocast bf16, fp32 master weights). auto: on where the hardware has fast bf16 "
        "(CUDA, or a CPU with AMX / AVX512-BF16: 1.5x faster forward+backward here, docs/BENCHMARKS.md)."))
    gradient_checkpointing: bool = Field(default=False,
        description="trades compute for memory; worth it on a GPU, not on CPU")
    threads: int | None = Field(default=None, ge=1, description=(
        "CPU threads of the training process (torch.set_num_threads); None: torch's default (one per core). "
        "On a shared, oversubscribed machine 1 thread can be several times faster (docs/TRAINING.md)."))
    seed: int = 0
    lora: LoraParams = Field(default_factory=LoraParams)
    train_limit: int | None = Field(default=None, ge=1, description="use only the first N training examples")
    launch: LaunchParams = Field(default_factory=LaunchParams)
    plots_file: str = Field(
        description="Per-step metrics (CSV, for `dvc plots`) and the stage's final metrics (JSON, for `dvc metrics`).")
    metrics_file: str
    register_as: str
