"""params.yaml: the one configuration file, one section per stage, validated with pydantic on load.

Every model forbids unknown keys, so a typo fails with the key's path instead of being ignored.
Overrides use the `dvc exp run -S` syntax (`grpo.reward.variant=coarse`): the value is parsed as
YAML, so `sft.lora.enabled=true` is a bool and `grpo.lr=1e-6` a float.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from toolrl.hardware import Bf16Setting, DtypeSetting
from toolrl.rewards.registry import COMPONENTS, get_variant  # no config import below it: no cycle

DEFAULT_PARAMS = Path("params.yaml")
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class ConfigError(ValueError):
    """A params file or override that cannot be used; the message names the key and the fix."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# ---------------------------------------------------------------- model


class ModelParams(Section):
    name: str = Field(default="smollm2-135m-instruct",
        description="`smollm2-135m-instruct` (embedded GGUF), `tiny-random`, a hub id, or a local folder.")
    revision: str | None = None
    seed: int = Field(default=0, description="seeds tiny-random's weights")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    output_dir: str = "models/base"


# ---------------------------------------------------------------- data


class SourceParams(Section):
    """One upstream source in the mix (see docs/DATA.md)."""

    name: Literal["rlla", "toolace", "xlam", "hammer", "bfcl"]
    location: str | None = Field(default=None, description=(
        "Hub id, local file or folder (json / jsonl / parquet), or an http(s) URL; bfcl: unused (the "
        "installed bfcl_eval package is the location)."))
    label: str | None = Field(default=None, description=(
        "Names this source in ids, strata and the data card; defaults to `name`. Give two entries of the "
        "same source different labels."))
    categories: list[str] = Field(default_factory=list, description="bfcl only; empty: all live_* categories")
    split: str = Field(default="train", description="hub split")
    limit: int | None = Field(default=None, ge=1, description="upstream records to sample (None: all)")
    seed: int | None = Field(default=None, description="sampling and masking seed; None: data.seed")
    turns: Literal["all", "last"] = Field(default="all",
        description="Multi-turn sources (toolace): one example per assistant turn, or only the last one.")
    mask_tool_names: bool | None = Field(default=None, description=(
        "Hammer's function masking: tool names become random strings in tools, history and target. None: on "
        "for `hammer`, off for the others."))
    mask_param_names: bool = Field(default=False,
        description="also mask parameter names (Hammer's optional variant)")

    @property
    def tag(self) -> str:
        return self.label or self.name

    @model_validator(mode="after")
    def _location_where_needed(self) -> SourceParams:
        if self.name != "bfcl" and not self.location:
            raise ValueError(f"source {self.name!r} needs a location (hub id, local file/folder or URL)")
        if self.name != "bfcl" and self.categories:
            raise ValueError(f"categories apply to the bfcl source only, not {self.name!r}")
        return self


class DataParams(Section):
    sources: list[SourceParams] = Field(
        default_factory=lambda: [
            SourceParams(name="bfcl", categories=["live_simple", "live_multiple", "live_parallel",
                                                  "live_parallel_multiple", "live_irrelevance"]),
        ]
    )
    seed: int = 0
    max_prompt_tokens: int = Field(default=768, ge=64, description=(
        "Prompt length cap, counted with `tokenizer` on the chat-templated prompt. Below sft.max_length, so "
        "every SFT example has room for its completion; shorter prompts also make every CPU training step "
        "cheaper (a step's cost is mostly the prompt: ~550 of ~650 tokens on BFCL)."))
    tokenizer: str = Field(default="smollm2-135m-instruct",
        description="a model reference as in `model.name`, or a tokenizer folder")
    near_duplicate_threshold: float = Field(default=0.9, gt=0, le=1, description=(
        "Token-set Jaccard similarity (of conversation + target) at or above which two examples are "
        "near-duplicates; 1.0 keeps only exact-duplicate removal."))
    no_call_responses: list[str] = Field(
        default_factory=lambda: [
            "None of the available tools can help with this request.",
            "I can't do that with the tools I have: none of them fits this request.",
            "The tools available here don't cover this request, so I can't call any of them.",
            "No available function matches what you're asking for.",
            "This request is outside what the provided tools can do.",
        ],
        min_length=1,
        description=(
            "The direct answers of no-call examples whose source has none (irrelevance categories): each "
            "example gets one, chosen by a hash of its id. Several phrasings, so SFT does not learn one canned "
            "string that GRPO then collapses onto (docs/RESULTS.md, the first default run)."),
    )
    max_no_call_share: float | None = Field(default=0.25, gt=0, le=1, description=(
        "Largest share of no-call examples (no tool call in the target) in the curated set; the excess, "
        "chosen by a hash of (seed, id), is quarantined as `no_call_share_cap`. The BFCL live mix under the "
        "768-token cap is 53 % no-call, and a policy trained on that learns that abstaining is the safe "
        "answer. None: no cap."))
    split: dict[str, float] = Field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})
    output_dir: str = "data/curated"

    @model_validator(mode="after")
    def _no_call_responses_filled(self) -> DataParams:
        if any(not r.strip() for r in self.no_call_responses):
            raise ValueError("data.no_call_responses has an empty answer: give every entry some text")
        return self

    @model_validator(mode="after")
    def _split_sums_to_one(self) -> DataParams:
        if set(self.split) != {"train", "val", "test"}:
            raise ValueError("data.split needs exactly the keys train, val, test")
        if abs(sum(self.split.values()) - 1.0) > 1e-6:
            raise ValueError(f"data.split fractions must sum to 1, got {sum(self.split.values())}")
        if any(v < 0 for v in self.split.values()):
            raise ValueError("data.split fractions must not be negative")
        return self

    @model_validator(mode="after")
    def _labels_unique(self) -> DataParams:
        tags = [s.tag for s in self.sources]
        dup = sorted({t for t in tags if tags.count(t) > 1})
        if dup:
            raise ValueError(f"data.sources: {dup} appear more than once; give each entry its own `label`")
        if not self.sources:
            raise ValueError("data.sources is empty: list at least one source")
        return self


# ---------------------------------------------------------------- training


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
        description="False: delete <output_dir>/checkpoints once the final model is saved")
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


class SftParams(TrainCommon):
    output_dir: str = "models/sft"
    # The loss flattens by step 25, but greedy decoding still abstained on all 16 probe prompts at step 30
    # (sampling called half the time); at 40 it called on 81 % (docs/RESULTS.md). 60 steps drove the
    # entropy to ~0.02 (first run).
    max_steps: int = Field(default=40,
        description="x 4 examples = 160 seen; ~19 s a step on 2 CPU cores (bf16): ~13 min")
    learning_rate: float = 5e-5
    num_train_epochs: float = Field(default=1.0,
        description="only used when max_steps is reached later than one pass")
    max_length: int = Field(default=1024, ge=32)
    completion_only_loss: bool = True
    probe_prompts: int = Field(default=16, ge=0, description=(
        "Held-out probe: greedy completions on this many val prompts before and after training, scored for "
        "well-formed tool calls (0 turns it off)."))
    probe_max_new_tokens: int = Field(default=192, ge=8)
    plots_file: str = "reports/plots/sft_loss.csv"
    metrics_file: str = "reports/metrics/sft.json"
    register_as: str = "toolrl-sft"


class RewardParams(Section):
    variant: str = Field(default="default", description=(
        "Reward variant by name (`toolrl reward variants` lists them): default, equal_max, two_stage, "
        "dynamic_scale, strict_match, intermediate, coarse, length, dynamic_length, schema_match, ..."))
    # Component ranges before the variant's schedule. null: the variant's own default from
    # toolrl.rewards.registry (format [0, 1], correctness [-3, 3] or [-1, 1] for equal_max, length [0, 1]).
    format_max: float | None = Field(default=None, description="null: the variant's default")
    format_min: float | None = Field(default=None, description="null: the variant's default")
    correctness_max: float | None = Field(default=None, description="null: the variant's default")
    correctness_min: float | None = Field(default=None, description="null: the variant's default")
    length_max: float | None = Field(default=None,
        description="null: the variant's default (used by length variants only)")
    length_min: float | None = Field(default=None,
        description="null: the variant's default (used by length variants only)")
    weights: dict[str, float] = Field(default_factory=dict,
        description="Weight of each component (format, correctness, length) in the total; a missing one is 1.0.")

    @model_validator(mode="after")
    def _check(self) -> RewardParams:
        get_variant(self.variant)  # raises with the list of known names
        unknown = sorted(set(self.weights) - set(COMPONENTS))
        if unknown:
            raise ValueError(f"weights has unknown components {unknown}: use {', '.join(COMPONENTS)}")
        for part in COMPONENTS:
            lo, hi = getattr(self, f"{part}_min"), getattr(self, f"{part}_max")
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"{part}_min ({lo}) is above {part}_max ({hi})")
        return self


class VllmParams(Section):
    """vLLM generation inside GRPOTrainer (GPU only; vLLM does not install on the CPU machines)."""

    enabled: bool = False
    mode: Literal["colocate", "server"] = "colocate"
    gpu_memory_utilization: float = Field(default=0.3, gt=0, le=1,
        description="colocate: vLLM shares the training GPUs")
    tensor_parallel_size: int = Field(default=1, ge=1)
    enable_sleep_mode: bool = Field(default=False,
        description="offload vLLM weights/cache during the optimizer step")
    max_model_length: int | None = Field(default=None, ge=64,
        description="prompt + completion; None: model config")
    server_host: str = Field(default="127.0.0.1",
        description="server: a separate `trl vllm-serve` process on its own GPUs")
    server_port: int = Field(default=8000, ge=1, le=65535)
    server_timeout: float = Field(default=240.0, gt=0)
    server_cuda_visible_devices: str | None = Field(default=None, description='GPUs of the server, e.g. "0"')
    server_data_parallel_size: int = Field(default=1, ge=1)


class GrpoParams(TrainCommon):
    """GRPO on the RL view. Defaults are the CPU setting: the embedded 135M model visibly learns in a
    run of minutes. The ToolRL paper's GPU setting (in brackets below) is the profile configs/gpu.yaml."""

    output_dir: str = "models/grpo"
    init: Literal["sft", "base"] = Field(default="sft",
        description="warm from the SFT model or cold from the base model")
    max_steps: int = Field(default=8,
        description="16 prompts; ~80 s a step on 2 CPU cores (bf16, completions of ~80 tokens): ~12 min")
    save_steps: int = 8
    learning_rate: float = Field(default=5e-6, description=(
        "[paper, GPU: 1e-6] Adam moves every weight by about lr per step whatever the gradient's size, and "
        "with 2 prompts a step one group sets the direction, which momentum carries through the following "
        "zero-signal steps: at 3e-5 one such group flipped the SFT policy to never calling by step 4."))
    num_generations: int = Field(default=4, ge=2, description="group size (rollouts per prompt) [paper: 4]")
    per_device_train_batch_size: int = Field(default=4, description=(
        "Completions per device and micro-batch (TRL's meaning): one step generates this x accumulation x "
        "processes completions, i.e. that / num_generations prompts. 4 x 2: 8 completions (2 prompts) per "
        "step, back-propagated 4 at a time: peak memory grows with the micro-batch (docs/BENCHMARKS.md)."))
    gradient_accumulation_steps: int = Field(default=2, ge=1)
    max_completion_length: int = Field(default=160, ge=8, description="[paper: 1024]")
    temperature: float = Field(default=1.0, gt=0, description="[paper: 1.0]")
    top_p: float = Field(default=1.0, gt=0, le=1)
    beta: float = Field(default=0.001, ge=0,
        description="KL coefficient [paper: 0.001]; 0 skips the reference model")
    epsilon: float = Field(default=0.2, gt=0, description="clip [paper: 0.2]")
    num_iterations: int = Field(default=1, ge=1, description="policy updates per generation batch (mu)")
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo"] = Field(default="dapo", description=(
        "dapo: TRL's default, token-level normalisation, as verl's token-mean that ToolRL trained with. grpo "
        "(per-sequence mean) weighs each token of a short completion more, e.g. a canned no-call answer."))
    scale_rewards: Literal["group", "batch", "none"] = Field(default="group",
        description="GRPO's per-group std normalisation")
    mask_truncated_completions: bool = False
    shared_prefix: bool = Field(default=True, description=(
        "Each group's prompt computed once in the log-prob passes (policy forward and backward, reference "
        "model, old policy); the group's completions attend to it. Same numbers as TRL's path up to rounding "
        "(tests/test_shared_prefix.py), ~3x fewer tokens through the model (docs/BENCHMARKS.md). Off: TRL's "
        "own."))
    generation_dtype: DtypeSetting = Field(default="auto", description=(
        "Weights the rollouts are generated with (a copy refreshed after every optimizer step, its cost "
        "logged as rollout/weight_sync_s); auto: bfloat16 where the hardware has fast bf16. The loss always "
        "scores the completions with the trained weights. Needs shared_prefix (TRL's path generates in "
        "fp32)."))
    reward: RewardParams = Field(default_factory=RewardParams)
    vllm: VllmParams = Field(default_factory=VllmParams)
    sample_every: int = Field(default=10, ge=1, description="log sample completions every N steps")
    sample_rows: int = Field(default=8, ge=1, description="completions per sample table")
    plots_file: str = "reports/plots/grpo_rewards.csv"
    metrics_file: str = "reports/metrics/grpo.json"
    register_as: str = "toolrl-grpo"

    @model_validator(mode="before")
    @classmethod
    def _removed_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "max_prompt_length" in data:
            raise ValueError("max_prompt_length is gone: TRL 1.x's GRPOConfig has no such option; prompts are "
                             "bounded at curation (data.max_prompt_tokens). Remove the key")
        return data

    @model_validator(mode="after")
    def _groups_fit_batch(self) -> GrpoParams:
        # TRL generates per_device x accumulation x processes completions at once; they must form whole
        # groups, else GRPOConfig fails late with a less helpful message.
        batch = self.per_device_train_batch_size * self.gradient_accumulation_steps * (self.launch.num_processes or 1)
        if batch % self.num_generations:
            raise ValueError(
                f"per_device_train_batch_size x gradient_accumulation_steps x launch.num_processes = {batch} "
                f"completions per step is not a multiple of num_generations = {self.num_generations}: change one "
                "of them (e.g. per_device_train_batch_size to a multiple of num_generations)")
        return self


# ---------------------------------------------------------------- TRM


class JudgeParams(Section):
    """The LLM judge labeler (`trm.data.labeler: judge`); see docs/TRM.md."""

    base_url: str | None = Field(default=None,
        description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    model: str = Field(default="judge", description="the `model` field of each request")
    api_key_env: str = Field(default="OPENAI_API_KEY",
        description="environment variable holding the key (unset: no auth header)")
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=2, ge=0, description="on timeouts, connection errors, 429 and 5xx")
    max_tokens: int = Field(default=128, ge=8)
    concurrency: int = Field(default=4, ge=1, description="requests in flight")
    prompt_file: str | None = Field(default=None, description=(
        "The judge's message template ({{tools}}, {{dialogue}}, {{prefix}}, {{call}}, {{reference}}); None: "
        "the packaged src/toolrl/prompts/trm_judge.md."))


TRM_NEGATIVE_KINDS = ("wrong_tool", "wrong_value", "missing_argument", "invented_argument", "wrong_type",
                      "extra_call")


class TrmDataParams(Section):
    """`trm_data`: policy rollouts split into one labelled step record per tool call."""

    policy: Literal["sft", "base", "grpo"] = Field(default="sft",
        description="which stage's model samples the completions")
    samples_per_prompt: int = Field(default=4, ge=1)
    prompts: int = Field(default=32, ge=1, description="training prompts sampled (all when fewer exist)")
    max_new_tokens: int = Field(default=128, ge=8)
    temperature: float = Field(default=1.0, gt=0)
    generation_batch_size: int = Field(default=8, ge=1, description="completions per generate() call")
    dtype: DtypeSetting = Field(default="auto", description="sampling weights; auto as in evaluate.dtype")
    labeler: Literal["rule", "judge"] = "rule"
    judge: JudgeParams = Field(default_factory=JudgeParams)
    hard_negatives_per_call: int = Field(default=1, ge=0, description=(
        "Hard negatives: perturbed copies of each correct call (policy calls labelled 1 and reference "
        "calls)."))
    negative_kinds: list[Literal["wrong_tool", "wrong_value", "missing_argument", "invented_argument",
                                 "wrong_type", "extra_call"]] = Field(
        default_factory=lambda: list(TRM_NEGATIVE_KINDS), min_length=1)
    reference_positives: bool = Field(default=True, description=(
        "Add the reference calls themselves as positives (label 1), so a policy that rarely calls right "
        "still yields positives."))
    reference_prompts: int | None = Field(default=None, ge=0, description=(
        "Further training prompts, beyond the sampled ones, that add only their reference calls (positives) "
        "and those calls' hard negatives: no sampling, so nearly free, and what gives the TRM enough "
        "positives on a CPU budget (64 sampled prompts alone gave 66 balanced records). None: all other "
        "training prompts; 0: none. Needs reference_positives."))
    positive_fraction: float = Field(default=0.5, gt=0, lt=1,
        description="the majority class is subsampled to it")
    max_records: int | None = Field(default=None, ge=1,
        description="cap after balancing (keeps the fraction)")
    val_fraction: float = Field(default=0.15, gt=0, lt=1,
        description="of prompts (records of a prompt stay together)")
    seed: int = 0
    output_dir: str = "data/trm"


class TrmModelParams(Section):
    """`trm`: a causal LM with a 2-way token-classification head read at each call's last token."""

    backbone: Literal["base"] | str = Field(default="base",
        description="\"base\": the model section's folder; else a model reference")
    output_dir: str = "models/trm"
    max_steps: int = Field(default=16, ge=1,
        description="~25 s a step on 2 CPU cores (bf16, ~700-token records)")
    learning_rate: float = Field(default=2e-5, gt=0)
    per_device_train_batch_size: int = Field(default=8, ge=1)
    per_device_eval_batch_size: int = Field(default=8, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    weight_decay: float = Field(default=0.0, ge=0)
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1)
    max_length: int = Field(default=1024, ge=32, description="longer steps lose tokens from the left")
    bf16: Bf16Setting = Field(default="auto", description="mixed precision, as in the training sections")
    logging_steps: int = Field(default=5, ge=1)
    eval_steps: int = Field(default=8, ge=1, description="evaluation (and checkpoint) every N steps")
    early_stopping_patience: int = Field(default=3, ge=1,
        description="evaluations without a better validation AUC")
    class_balance: bool = Field(default=True,
        description="weight the loss by inverse class frequency of the training records")
    threshold: float = Field(default=0.5, gt=0, lt=1, description="score above which a call counts as good")
    seed: int = 0
    plots_file: str = "reports/plots/trm_train.csv"
    metrics_file: str = "reports/metrics/trm.json"
    calibration_plot: str = "reports/plots/trm_calibration.png"
    register_as: str = "toolrl-trm"


class GrpoTrmParams(Section):
    """`grpo_trm`: GRPO from the same init and with the same budget as `grpo` (every other setting comes
    from the grpo section), plus the TRM's turn-level call advantages."""

    output_dir: str = "models/grpo_trm"
    alpha: float = Field(default=0.01, ge=0,
        description="weight of the call advantage (paper: 0.01 for GRPO)")
    advantage: str = Field(default="turn_level", description=(
        "Call-advantage estimator by name (toolrl.trm.advantages.CALL_ADVANTAGES): turn_level: call i "
        "normalised against call i of the group; pooled: all calls of a group together (the naive ablation "
        "that teaches the policy to call fewer tools)."))
    reward_model: str | None = Field(default=None, description="TRM folder; None: trm.model.output_dir")
    score_batch_size: int = Field(default=8, ge=1, description="calls per TRM forward pass")
    score_dtype: DtypeSetting = Field(default="auto", description=(
        "TRM weights while scoring calls; auto: bfloat16 where the hardware has fast bf16. Scoring was a "
        "tenth of a grpo_trm step in float32 (py-spy, docs/BENCHMARKS.md); bf16 prefill is ~3x faster."))
    plots_file: str = "reports/plots/grpo_trm_rewards.csv"
    metrics_file: str = "reports/metrics/grpo_trm.json"
    register_as: str = "toolrl-grpo-trm"

    @model_validator(mode="after")
    def _known_estimator(self) -> GrpoTrmParams:
        from toolrl.trm.advantages import get_call_advantage

        get_call_advantage(self.advantage)  # raises with the list of known names
        return self


class TrmParams(Section):
    data: TrmDataParams = Field(default_factory=TrmDataParams)
    model: TrmModelParams = Field(default_factory=TrmModelParams)
    grpo: GrpoTrmParams = Field(default_factory=GrpoTrmParams)


# ---------------------------------------------------------------- evaluation and tracking


# BFCL's single-turn Python categories (simple_java/simple_javascript need argument values written as
# Java/JS source strings, which the project's JSON call format does not produce).
BfclCategory = Literal[
    "simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance", "live_simple",
    "live_multiple", "live_parallel", "live_parallel_multiple", "live_irrelevance", "live_relevance",
]


class EvaluateVllmParams(Section):
    """vLLM engine settings for `evaluate.backend: vllm` (GPU machines)."""

    tensor_parallel_size: int = Field(default=1, ge=1)
    gpu_memory_utilization: float = Field(default=0.85, gt=0, le=1)
    max_model_len: int | None = Field(default=None, ge=256,
        description="None: the model's own context length")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    enforce_eager: bool = Field(default=False,
        description="skip CUDA graph capture: slower decoding, faster start")


class EvaluateParams(Section):
    models: list[str] = Field(
        default_factory=lambda: ["base", "sft", "grpo", "grpo_trm"], min_length=1,
        description=("Stage names (base, sft, grpo, grpo_trm), `models:/name@alias`, hub ids, local folders, "
                     "`smollm2-135m-instruct` or `tiny-random`."))
    benchmarks: list[Literal["bfcl", "api_bank"]] = Field(default_factory=lambda: ["bfcl", "api_bank"],
                                                          min_length=1)
    bfcl_categories: list[BfclCategory] = Field(
        default_factory=lambda: ["simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance"],
        description=("The live_* categories are curated for training by default (data.sources); evaluate them "
                     "only when they were not trained on."))
    api_bank_paths: list[str] = Field(default_factory=list, description=(
        "ToolRL-processed API-Bank files, one per level (`level-<n>-...json`); empty: API-Bank is skipped "
        "with a warning in the report."))
    limit: int | None = Field(default=10, ge=1, description=(
        "First N examples per category / level, by id order. 10 keeps `make run` near an hour on 2 CPU cores "
        "(each case is then 10 points of its category); the full profile evaluates 100."))
    limit_per_benchmark: dict[Literal["bfcl", "api_bank"], int | None] = Field(default_factory=dict,
        description="Per-benchmark limit overriding `limit` (e.g. {api_bank: 20}); null: every case of that benchmark.")
    batch_size: int = Field(default=8, ge=1)
    max_new_tokens: int = Field(default=192, ge=8)
    backend: Literal["hf", "vllm"] = "hf"
    dtype: DtypeSetting = Field(default="auto", description=(
        "hf backend weights; auto: bfloat16 where the hardware has fast bf16 (3x faster prefill on an AMX "
        "CPU, docs/BENCHMARKS.md), else float32."))
    threads: int | None = Field(default=None, ge=1, description=(
        "CPU threads of the hf backend (torch.set_num_threads); None: torch's default (one per core). On a "
        "shared, oversubscribed machine 1 thread can be several times faster (docs/BENCHMARKS.md)."))
    vllm: EvaluateVllmParams = Field(default_factory=EvaluateVllmParams)
    failures_per_model: int = Field(default=3, ge=0, description="example failures shown in the report")
    output_dir: str = "reports"
    cache_dir: str = Field(default="reports/cache", description=(
        "Completions cached per model content hash; keep it out of the stage's DVC outs (or mark it "
        "`persist: true`) so that `dvc repro` does not wipe it."))

    @model_validator(mode="after")
    def _no_duplicates(self) -> EvaluateParams:
        for bench, n in self.limit_per_benchmark.items():
            if n is not None and n < 1:
                raise ValueError(f"evaluate.limit_per_benchmark.{bench} must be at least 1 (or null for all)")
        for key in ("models", "benchmarks", "bfcl_categories", "api_bank_paths"):
            values = getattr(self, key)
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"evaluate.{key} lists {', '.join(dupes)} more than once")
        return self


class TrackingParams(Section):
    tracking_uri: str | None = Field(default=None,
        description="None: MLFLOW_TRACKING_URI if set, else the embedded SQLite store below.")
    embedded_uri: str = "sqlite:///mlruns.db"
    artifact_root: str = "mlartifacts"
    experiment: str = "toolrl"
    register_models: bool = True


class Params(Section):
    model: ModelParams = Field(default_factory=ModelParams)
    data: DataParams = Field(default_factory=DataParams)
    sft: SftParams = Field(default_factory=SftParams)
    grpo: GrpoParams = Field(default_factory=GrpoParams)
    trm: TrmParams = Field(default_factory=TrmParams)
    evaluate: EvaluateParams = Field(default_factory=EvaluateParams)
    tracking: TrackingParams = Field(default_factory=TrackingParams)

    @model_validator(mode="after")
    def _prompts_fit_sft(self) -> Params:
        # Caught here, not after curation: SFT refuses examples whose prompt fills max_length.
        if self.data.max_prompt_tokens >= self.sft.max_length:
            raise ValueError(f"data.max_prompt_tokens ({self.data.max_prompt_tokens}) must be below sft.max_length "
                             f"({self.sft.max_length}), or SFT examples have no room for their completion: lower "
                             "the first or raise the second")
        return self


# ---------------------------------------------------------------- loading


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (["a","b","c"], parsed value); the value is YAML, as `dvc exp run -S` reads it."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} needs the form key.sub=value (e.g. grpo.max_steps=10)")
    key, _, raw = text.partition("=")
    # Hydra's `+key` / `++key` (add / add-or-override, as `dvc exp run -S` takes them) set the key here.
    path = [p for p in key.strip().lstrip("+").split(".") if p]
    if not path:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc.__class__.__name__})") from None
    # PyYAML follows YAML 1.1, where `1e-6` is a string; DVC (YAML 1.2) reads it as a float.
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        value = float(value)
    return path, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    data = copy.deepcopy(raw)
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {text!r}: {part!r} is a value, not a section")
            node = nxt
        node[path[-1]] = value
    return data


def _describe(err: dict[str, Any]) -> str:
    path = ".".join(str(p) for p in err["loc"]) or "(top level)"
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return f"{path}: unknown key"
    got = repr(err.get("input"))
    # A whole section as "input" (from a section-level check) would bury the message.
    if "input" in err and not isinstance(err["input"], dict) and len(got) <= 120:
        return f"{path}: {msg} (got {got})"
    return f"{path}: {msg}"


def _allowed_keys(loc: tuple, model: type[BaseModel] = Params) -> list[str]:
    """The keys allowed where an unknown key was found, walking the schema along `loc`."""
    cls = model
    for part in loc[:-1]:
        field = cls.model_fields.get(str(part)) if isinstance(part, str) else None
        ann = field.annotation if field else None
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            cls = ann
        else:
            return []
    return sorted(cls.model_fields)


def validate(raw: dict[str, Any], source: str = "params") -> Params:
    try:
        return Params.model_validate(raw or {})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            line = _describe(err)
            if err["type"] == "extra_forbidden":
                allowed = _allowed_keys(tuple(err["loc"]))
                if allowed:
                    line += f"; allowed keys here: {', '.join(allowed)}"
            lines.append(line)
        raise ConfigError(f"{source} is invalid: " + "; ".join(lines)) from None


def load_raw(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"params file {path} not found: run from the project root or pass --params")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections (model, data, sft, ...)")
    return data


def load_params(path: str | Path = DEFAULT_PARAMS, overrides: list[str] | None = None) -> Params:
    """Load, override and validate params.yaml."""
    raw = apply_overrides(load_raw(path), overrides or [])
    return validate(raw, source=str(path))
