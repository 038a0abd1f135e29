"""params.yaml `grpo`: GRPO with the ToolRL reward (grpo stage; grpo_trm takes its budget and reward from it)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from toolrl.hardware import DtypeSetting
from toolrl.rewards.registry import (  # imports no schema or config: no cycle
    COMPONENTS,
    get_multi_turn,
    get_variant,
)
from toolrl.schema.base import Section
from toolrl.schema.training import TrainCommon


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
    weights: dict[str, float] = Field(default_factory=dict, description=(
        "Weight of each component (format, correctness, length; outcome for multi-turn) in the total; "
        "a missing one is 1.0."))
    multi_turn: str = Field(default="outcome_dense", description=(
        "Multi-turn trajectories only (BFCL's executable environments): outcome (BFCL's multi-turn checker), "
        "dense (ToolRL's format per message and correctness per turn, with `variant`'s ranges) or "
        "outcome_dense (both)"))
    outcome_max: float | None = Field(default=None, description="null: the multi-turn reward's default")
    outcome_min: float | None = Field(default=None, description="null: the multi-turn reward's default")

    @model_validator(mode="after")
    def _check(self) -> RewardParams:
        get_variant(self.variant)  # raises with the list of known names
        get_multi_turn(self.multi_turn)
        parts = (*COMPONENTS, "outcome")
        unknown = sorted(set(self.weights) - set(parts))
        if unknown:
            raise ValueError(f"weights has unknown components {unknown}: use {', '.join(parts)}")
        for part in parts:
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
    task: Literal["single_turn", "multi_turn"] = Field(default="single_turn", description=(
        "single_turn: the curated RL view (data/curated/train.jsonl), one completion per prompt, the ToolRL "
        "reward (reward.variant). multi_turn: BFCL's multi-turn training scenarios "
        "(data/curated/multi_turn/train_rl.jsonl, from the bfcl_multi_turn source), whole conversations "
        "against the case's executed tools (limits: multi_turn.limits), the multi-turn reward "
        "(reward.multi_turn). docs/MULTI_TURN.md."))
    init: Literal["sft", "base"] = Field(default="sft",
        description="warm from the SFT model or cold from the base model")
    max_steps: int = Field(default=32,
        description=("32 prompts, 256 completions (1 prompt x 8 a step); ~12 s a step on 2 CPU cores with AMX "
                     "(bf16): ~7 min (the ninth default run, docs/RESULTS.md)"))
    save_steps: int = 8
    learning_rate: float = Field(default=5e-6, description=(
        "[paper, GPU: 1e-6] Adam moves every weight by about lr per step whatever the gradient's size, and "
        "with one or two prompts a step one group sets the direction, which momentum carries through the following "
        "zero-signal steps: at 3e-5 one such group flipped the SFT policy to never calling by step 4; at 1e-5 GRPO "
        "scored 3.8 BFCL points below 5e-6 after 50 steps, and at 2e-6 it stayed at the SFT (docs/RESULTS.md)."))
    num_generations: int = Field(default=8, ge=2, description=(
        "group size (rollouts per prompt) [paper: 4]. 8: one prompt's 8 rollouts a step cost 0.65x two "
        "prompts' 4 (the prompt computed and prefilled once, drafts that repeat the group's text; "
        "docs/BENCHMARKS.md), fewer groups without reward variance early, and the same held-out score within "
        "noise at 50 steps (docs/RESULTS.md, \"Group size 8 against 4\")"))
    per_device_train_batch_size: int = Field(default=8, description=(
        "Completions per device and micro-batch (TRL's meaning): one step generates this x accumulation x "
        "processes completions, i.e. that / num_generations prompts. 8 x 1: 8 completions (1 prompt) per "
        "step in one micro-batch, so each group's prompt is computed once (shared_prefix); that peaks at "
        "~6-7 GB here, where TRL's own path needed 17 GB and so 4 x 2 (docs/BENCHMARKS.md)."))
    gradient_accumulation_steps: int = Field(default=1, ge=1)
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
        "(tests/test_shared_prefix.py), ~3x fewer tokens through the model (docs/BENCHMARKS.md). Rollouts too: "
        "each prompt prefilled once, then toolrl.decode's lean loop (generate's tokens, greedy and seeded "
        "sampling; 1.17-1.26x over prefill + generate, 1.8-2.4x over TRL's generate on CPU). Off: TRL's own."))
    loss_rows_at_once: int | None = Field(default=None, ge=1, description=(
        "With shared_prefix: how many of a group's completions the policy's forward+backward scores against "
        "the group's prompt at once. Each chunk's activations are recomputed in backward (activation "
        "checkpointing per chunk of rows, the prompt still computed once), so a pass holds the prompt's "
        "activations plus one chunk's: a multi-turn group of 4 x 600 tokens after a 3.5k-token opening "
        "peaks at 9.6 GB at 1 instead of 16.4 GB, 3 % slower (docs/BENCHMARKS.md): the completions run twice. "
        "Same numbers (tests/test_shared_prefix.py). None: the whole group at once."))
    generation_dtype: DtypeSetting = Field(default="auto", description=(
        "Weights the rollouts are generated with (a copy refreshed after every optimizer step, its cost "
        "logged as rollout/weight_sync_s); auto: bfloat16 where the hardware has fast bf16. The loss always "
        "scores the completions with the trained weights. Needs shared_prefix (TRL's path generates in "
        "fp32)."))
    lookup_tokens: int = Field(default=6, ge=0, description=(
        "With shared_prefix: draft up to this many tokens a row by n-gram lookup (in the row's prompt and "
        "text, then in the step's and recent steps' completions) and check them in one forward pass "
        "(toolrl.decode.Lookup). Completions are drawn from the same distribution (speculative sampling; "
        "greedy: the same tokens), with other random draws than TRL's generate. Generation 1.4-1.6x "
        "faster inside GRPO steps on 2 CPU cores in float32, ~3 tokens a row-pass (docs/BENCHMARKS.md); tokens per pass are "
        "logged as rollout/lookup_tokens_per_pass. 0: off (each token its own pass: generate's seeded draws)."))
    dynamic_sampling: int = Field(default=0, ge=0, description=(
        "Dynamic sampling (DAPO; toolrl.training.dynamic_sampling): at most this many further generation "
        "passes a step, over prompts drawn at random from the training set, to replace the step's groups "
        "without signal (every advantage 0: all completions rewarded alike) by groups with signal; the batch "
        "keeps its size. Each pass costs a generation and scoring of the groups it replaces. 0: off (TRL's "
        "sampling; 28-44 % of groups were without signal in the 100-step runs, docs/RESULTS.md)."))
    no_call_share: float | None = Field(default=None, ge=0, lt=1, description=(
        "Share of GRPO's prompts whose ground truth has no call (abstain prompts), set apart from the "
        "curated set's (data.max_no_call_share, which SFT sees too): the training set's no-call records are "
        "repeated, or thinned, by grpo.seed until they make up this share. Each group of a call prompt in "
        "which some completions abstain pushes abstaining down; only no-call prompts push it up, and at the "
        "curated 0.25 every GRPO run lost the SFT's abstaining on BFCL irrelevance (docs/RESULTS.md). "
        "single_turn only. None: the curated mix as it is."))
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

    @model_validator(mode="after")
    def _no_call_share_single_turn(self) -> GrpoParams:
        if self.no_call_share is not None and self.task != "single_turn":
            raise ValueError("grpo.no_call_share mixes the curated single-turn prompts; multi-turn scenarios have "
                             "no such mix: set it to null with task: multi_turn")
        return self
