"""params.yaml `trm`: the Tool-call Reward Model (`data`: trm_data stage, `model`: trm, `grpo`: grpo_trm)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from toolrl.hardware import Bf16Setting, DtypeSetting
from toolrl.schema.base import Section


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

    task: Literal["single_turn", "multi_turn"] = Field(default="single_turn", description=(
        "single_turn: one completion per curated training prompt; multi_turn: whole conversations on the "
        "curated multi-turn training cases (data/curated/multi_turn/train_rl.jsonl) in BFCL's executable "
        "environments, each call labelled in its context (docs/TRM.md, Multi-turn). `prompts` then counts cases."))
    policy: Literal["sft", "base", "grpo"] = Field(default="sft",
        description="which stage's model samples the completions")
    samples_per_prompt: int = Field(default=4, ge=1)
    prompts: int = Field(default=32, ge=1, description="training prompts sampled (all when fewer exist)")
    max_new_tokens: int = Field(default=128, ge=8)
    temperature: float = Field(default=1.0, gt=0)
    generation_batch_size: int = Field(default=8, ge=1, description="completions per generate() call")
    dtype: DtypeSetting = Field(default="auto", description="sampling weights; auto as in evaluate.dtype")
    lookup_tokens: int = Field(default=6, ge=0, description=(
        "Draft up to this many tokens a completion by n-gram lookup and check them in one forward pass, as "
        "grpo.lookup_tokens (toolrl.decode.Lookup): the same distribution, other random draws. "
        "0: off (generate's seeded draws)."))
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
    max_steps_per_turn: int = Field(default=5, ge=1, description="multi_turn: model messages per user turn")
    max_calls: int = Field(default=20, ge=1, description="multi_turn: tool calls per conversation")
    max_total_tokens: int = Field(default=8192, ge=64, description=(
        "multi_turn: the context a conversation may fill (opening ~3.5k tokens); max_new_tokens bounds each message"))
    seed: int = 0
    output_dir: str = "data/trm"

    @model_validator(mode="after")
    def _multi_turn_labels(self) -> TrmDataParams:
        if self.task == "multi_turn" and self.labeler != "rule":
            raise ValueError("trm.data.task multi_turn labels with the rules (labeler: rule): the judge reads "
                             "single-turn prompts only")
        return self


class TrmModelParams(Section):
    """`trm`: a causal LM with a 2-way token-classification head read at each call's last token."""

    backbone: Literal["base"] | str = Field(default="base",
        description="\"base\": the model section's folder; else a model reference")
    output_dir: str = "models/trm"
    max_steps: int = Field(default=16, ge=1,
        description="~17-19 s a step on 2 CPU cores with AMX (bf16, ~700-1,000-token records)")
    learning_rate: float = Field(default=2e-5, gt=0)
    per_device_train_batch_size: int = Field(default=8, ge=1)
    per_device_eval_batch_size: int = Field(default=8, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    weight_decay: float = Field(default=0.0, ge=0)
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1)
    max_length: int = Field(default=1024, ge=32, description="longer steps lose tokens from the left")
    keep_called_tool: bool = Field(default=True, description=(
        "A step cut to max_length opens with the called tool's entry from the tool list when the cut took it "
        "away (multi-turn openings are ~3.5k tokens of tool descriptions). Saved with the TRM, so scoring "
        "reads steps as training did. Steps that fit are unchanged."))
    train_limit: int | None = Field(default=None, ge=2, description=(
        "Train on a seeded sample of this many training records (all when None): the data-requirement "
        "study (`toolrl trm sizes`) sets it."))
    val_limit: int | None = Field(default=None, ge=2, description=(
        "Evaluate and measure on a seeded sample of this many validation records (all when None). Multi-turn "
        "records fill max_length, so each evaluation of ~700 held-out calls costs minutes on a CPU; the "
        "interval on ROC-AUC widens accordingly."))
    bf16: Bf16Setting = Field(default="auto", description="mixed precision, as in the training sections")
    logging_steps: int = Field(default=5, ge=1)
    eval_steps: int = Field(default=8, ge=1, description="evaluation (and checkpoint) every N steps")
    early_stopping_patience: int = Field(default=3, ge=1,
        description="evaluations without a better validation AUC")
    class_balance: bool = Field(default=True,
        description="weight the loss by inverse class frequency of the training records")
    threshold: float = Field(default=0.5, gt=0, lt=1, description="score above which a call counts as good")
    shared_prefix: bool = Field(default=True, description=(
        "records of a batch that share a prompt compute it once (the same logits, loss and gradients up to "
        "rounding: toolrl.training.common_prefix); false: the stock forward, every record over its whole prompt"))
    group_by_prompt: bool = Field(default=False, description=(
        "draw training batches prompt by prompt (a prompt's records consecutive, prompts shuffled per epoch), "
        "so a batch holds few prompts and shared_prefix computes each once: 1.4-1.5x a step, but at the default "
        "16 steps held-out ROC-AUC -0.05 [-0.11, +0.01] over 3 seeds (fewer prompts seen; docs/RESULTS.md). "
        "false: records at random, as the stock Trainer"))
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
