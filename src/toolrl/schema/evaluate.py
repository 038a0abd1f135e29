"""params.yaml `evaluate`: the benchmarks and models of the evaluate stage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from toolrl.hardware import DtypeSetting
from toolrl.schema.base import Section

# BFCL's single-turn Python categories (simple_java/simple_javascript need argument values written as
# Java/JS source strings, which the project's JSON call format does not produce), and its four
# multi-turn categories (conversations on executed environments, held-out scenarios only).
BfclCategory = Literal[
    "simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance", "live_simple",
    "live_multiple", "live_parallel", "live_parallel_multiple", "live_irrelevance", "live_relevance",
    "multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context",
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


class EvaluateOpenVinoParams(Section):
    """OpenVINO GenAI settings for `evaluate.backend: openvino` (CPU; docs/BENCHMARKS.md). It always runs
    exact: the KV cache in the weights' precision and no int8 quantization of activations (the CPU
    plugin's defaults were no faster here and changed 5 of 60 completions)."""

    max_num_seqs: int = Field(default=32, ge=1, description=(
        "Sequences decoded together by the continuous batching scheduler (all cases are queued at once; a "
        "finished one makes room for the next)."))
    max_num_batched_tokens: int = Field(default=256, ge=16, description=(
        "Tokens one scheduler step computes: prompts are prefilled in chunks of this size beside the "
        "decoding sequences."))
    cache_size_gb: int = Field(default=2, ge=0, description=(
        "The KV cache's size in whole GB, fixed. 0: OpenVINO GenAI grows it as it needs and never gives it back, "
        "which held ~17 MB a case here (22.6 GB at 1,240 BFCL cases a model, on a 24 GB machine; docs/BENCHMARKS.md). "
        "2 GB holds ~45k tokens of the 135M model in float32: raise it for a larger model or longer prompts."))


class EvaluateMultiTurnParams(Section):
    """Limits of one conversation of a BFCL multi-turn case (`toolrl.multiturn.loop.Limits`)."""

    max_new_tokens: int = Field(default=256, ge=8, description="Tokens per model message; a cut message is read as is.")
    max_steps_per_turn: int = Field(default=5, ge=1, description=(
        "Model messages per user turn; a turn still calling at the limit ends the conversation (wrong: "
        "force_terminated when turns remain)."))
    max_calls: int = Field(default=20, ge=1, description="Tool calls per conversation; past it the conversation ends.")
    max_total_tokens: int = Field(default=8192, ge=256, description=(
        "Prompt + conversation, in tokens (SmolLM2's context). Openings are ~2.1-4.7k tokens, median ~3.5k "
        "(tools and first request); long_context cases grow faster."))


class EvaluateParams(Section):
    models: list[str] = Field(
        default_factory=lambda: ["base", "sft", "grpo", "grpo_trm"], min_length=1,
        description=("Stage names (base, sft, grpo, grpo_trm), `models:/name@alias`, hub ids, local folders, "
                     "`smollm2-135m-instruct` or `tiny-random`."))
    arms: dict[str, list[str]] = Field(default_factory=dict, description=(
        "Training methods, each a list of `models` trained alike but for the seed (e.g. {grpo: [models/grpo_s0, "
        "models/grpo_s1, models/grpo_s2], grpo_trm: [...]}): the report adds each arm's mean score over its seeds "
        "and, for every pair of arms, the difference with Welch's t interval over seeds and cases "
        "(docs/EVALUATION.md, Methods across seeds). A paired test between two checkpoints cannot say which "
        "method is better: two seeds of one method differ by up to 4 BFCL points here. An arm of one model (the "
        "SFT every seed starts from) is held fixed. Empty: no arms."))
    benchmarks: list[Literal["bfcl", "api_bank"]] = Field(default_factory=lambda: ["bfcl", "api_bank"],
                                                          min_length=1)
    bfcl_categories: list[BfclCategory] = Field(
        default_factory=lambda: ["simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance"],
        description=("The live_* categories are curated for training by default (data.sources); evaluate them "
                     "only when they were not trained on. multi_turn_* (base, miss_func, miss_param, long_context): "
                     "whole conversations on the scenarios `multi_turn` holds out, reported as benchmark "
                     "bfcl_multi_turn; ~4k-token openings make them the costliest cases on CPU."))
    api_bank_paths: list[str] = Field(default_factory=list, description=(
        "ToolRL-processed API-Bank files, one per level (`level-<n>-...json`); empty: API-Bank is skipped "
        "with a warning in the report."))
    # The power figures below come from `python -m toolrl.evaluation.stats` (min_detectable_difference).
    limit: int | None = Field(default=20, ge=1, description=(
        "Cases per category / level, a sample drawn with `seed`: cases ordered by a hash of (seed, case id) and "
        "the first N taken, so a larger N keeps a smaller one's cases. null: every case. What N buys, for two "
        "models that disagree on 20 % of cases (smallest paired difference McNemar's test detects at 80 % power, "
        "two-sided alpha 0.05): over BFCL's 5 default categories, 10 per category (50 cases) ~17 points, 20 "
        "(100) ~12, 50 (250) ~8, 100 (500) ~6, all 1240 ~4; within one category nothing below 37 cases (20 "
        "points, all of the disagreement, is the most there is to detect), ~17 at 50, ~12 at 100. 20: 100 BFCL cases a model, 1-2 min each "
        "on 2 CPU cores with the openvino backend (`auto`; ~1 min with AMX, ~1.8 on AMD cores without it, docs/RESULTS.md's "
        "ninth and tenth runs); the full profile evaluates every case."))
    seed: int = Field(default=0, description=(
        "Seed of the sample drawn per category / level (see limit). Another seed draws other cases; completions "
        "of cases in both samples come from the cache."))
    limit_per_benchmark: dict[Literal["bfcl", "bfcl_multi_turn", "api_bank"], int | None] = Field(
        default_factory=dict, description=(
            "Per-benchmark limit overriding `limit` (e.g. {api_bank: 20}); null: every case of that benchmark. "
            "bfcl_multi_turn: the multi_turn_* categories of bfcl_categories."))
    batch_size: int = Field(default=8, ge=1)
    max_new_tokens: int = Field(default=192, ge=8)
    backend: Literal["auto", "hf", "openvino", "vllm"] = Field(default="auto", description=(
        "hf: transformers on CPU or GPU (the reference); openvino: OpenVINO GenAI's continuous batching on "
        "CPU, ~2x faster with the same greedy completions (in float32; in bf16 kernels part ways on 10-25 % of "
        "cases, docs/BENCHMARKS.md), an export of each model cached under "
        "cache_dir/openvino; vllm: GPU. auto: openvino for each model it can export (Llama, as the embedded "
        "SmolLM2) on a machine without CUDA where openvino-genai is installed, else hf; the report names the "
        "backend each model ran on."))
    dtype: DtypeSetting = Field(default="auto", description=(
        "hf and openvino backends' precision; auto: bfloat16 where the hardware has fast bf16 (3x faster prefill on an AMX "
        "CPU, docs/BENCHMARKS.md), else float32."))
    lookup_tokens: int = Field(default=6, ge=0, description=(
        "hf backend and multi-turn conversations: draft up to this many tokens a completion by n-gram lookup "
        "(in its prompt and text, then in the other completions) and check them in one forward pass "
        "(toolrl.decode.Lookup): greedy, so the same tokens in fewer passes (tests/test_decode.py), 1.37x "
        "the cases/s on BFCL in bf16, where a multi-token pass rounds otherwise and flips ties: 31 of 40 "
        "completions identical with and without drafts, as many as between any two bf16 kernels "
        "(docs/BENCHMARKS.md). 0: off, one pass a token."))
    threads: int | None = Field(default=None, ge=1, description=(
        "CPU threads of the hf and openvino backends (torch.set_num_threads, INFERENCE_NUM_THREADS); None: torch's default (one per core). On a "
        "shared, oversubscribed machine 1 thread can be several times faster (docs/BENCHMARKS.md)."))
    vllm: EvaluateVllmParams = Field(default_factory=EvaluateVllmParams)
    openvino: EvaluateOpenVinoParams = Field(default_factory=EvaluateOpenVinoParams)
    multi_turn: EvaluateMultiTurnParams = Field(default_factory=EvaluateMultiTurnParams, description=(
        "BFCL multi_turn_* categories: the model runs each conversation (hf weights, greedy, whatever `backend`)."))
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
        seen: dict[str, str] = {}
        for arm, members in self.arms.items():
            if not members:
                raise ValueError(f"evaluate.arms.{arm} is empty: list the models trained by that method")
            for m in members:
                if m not in self.models:
                    raise ValueError(f"evaluate.arms.{arm} lists {m}, which is not in evaluate.models "
                                     f"({', '.join(self.models)}): add it there, spelled the same")
                if m in seen:
                    raise ValueError(f"evaluate.arms: {m} is in both {seen[m]} and {arm}; a checkpoint belongs "
                                     "to one method")
                seen[m] = arm
        return self
