"""GRPO with the ToolRL reward: TRL GRPOTrainer on the curated RL view.

The reward library (`toolrl.rewards.trl`) gives one TRL reward function per component of the chosen
variant (`grpo.reward.variant`) and their weights; TRL hands each function the trainer state, whose
`global_step` drives the variant's schedules. The functions are observed, not changed
(`RewardRecorder`): call statistics per step and sample tables every `grpo.sample_every` steps.

Starts warm from the SFT model (`grpo.init: sft`) or cold from the base model (`base`). On a GPU,
`grpo.vllm` moves generation to vLLM, colocated or a `trl vllm-serve` server (see docs/TRAINING.md).

The trainer is `SharedPrefixGRPOTrainer` (toolrl.training.shared_prefix: each group's prompt computed
once, `grpo.shared_prefix`). TRM-guided GRPO with turn-level call advantages (`grpo_trm`) reuses this
stage with `TrmGRPOTrainer` (toolrl.trm.grpo); the call-advantage estimators are a registry in
toolrl.trm.advantages.

`grpo.task: multi_turn` trains on BFCL's multi-turn training scenarios instead (`multi_turn_task`):
whole conversations against the case's executed tools, run by the one conversation loop inside
TRL's `rollout_func` (toolrl.multiturn.rollouts), scored by the multi-turn reward
(`grpo.reward.multi_turn`); everything else (init, budget, trainer, outputs) is the same stage. A
trainer class that does not declare `supports_multi_turn` is refused for it (grpo_trm's
`TrmGRPOTrainer` does: it scores every call of every model message in its context).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolrl.config import GrpoParams, Params
from toolrl.training import checkpoints, publish, stage
from toolrl.training.callbacks import RewardRecorder, StageCallback
from toolrl.training.data import (
    MULTI_TURN_FIX,
    TrainingError,
    multi_turn_path,
    no_call_mix,
    read_multi_turn,
    read_records,
    split_path,
    to_dataset,
)

STAGE = "grpo"


def init_folder_path(params: Params) -> Path:
    """The model GRPO starts from: the SFT output (warm, `grpo.init: sft`) or the base model (cold)."""
    return Path(params.sft.output_dir if params.grpo.init == "sft" else params.model.output_dir)


def init_folder(params: Params) -> Path:
    """`init_folder_path`, checked to hold a model."""
    if params.grpo.init == "sft":
        return stage.model_folder(init_folder_path(params), "SFT model",
                                   "run `toolrl train sft` first, or start cold with -S grpo.init=base")
    return stage.model_folder(init_folder_path(params), "base model",
                               "run `toolrl model prepare` (or `dvc repro prepare_model`) first")


def config_kwargs(params: Params, state: checkpoints.OutputState, section: GrpoParams | None = None,
                  name: str = STAGE) -> dict[str, Any]:
    """GRPOConfig fields (TRL 1.16 names) for these params (`section`: another GRPO section, e.g. grpo_trm's)."""
    from toolrl.rewards.trl import multi_turn_reward_weights, reward_weights

    sec = section or params.grpo
    kwargs = {
        **stage.trainer_args(sec, state, name, params.model.dtype),
        "num_generations": sec.num_generations,
        "max_completion_length": sec.max_completion_length,
        "temperature": sec.temperature,
        "top_p": sec.top_p,
        "beta": sec.beta,
        "epsilon": sec.epsilon,
        "num_iterations": sec.num_iterations,
        "loss_type": sec.loss_type,
        "scale_rewards": sec.scale_rewards,
        "mask_truncated_completions": sec.mask_truncated_completions,
        "reward_weights": (multi_turn_reward_weights if sec.task == "multi_turn" else reward_weights)(sec.reward),
    }
    vllm = sec.vllm
    if vllm.enabled:
        kwargs.update(use_vllm=True, vllm_mode=vllm.mode, vllm_max_model_length=vllm.max_model_length)
        if vllm.mode == "colocate":
            kwargs.update(vllm_gpu_memory_utilization=vllm.gpu_memory_utilization,
                          vllm_tensor_parallel_size=vllm.tensor_parallel_size,
                          vllm_enable_sleep_mode=vllm.enable_sleep_mode)
        else:  # the server's own GPU settings go on its command line (toolrl.training.launch)
            kwargs.update(vllm_server_host=vllm.server_host, vllm_server_port=vllm.server_port,
                          vllm_server_timeout=vllm.server_timeout)
    return kwargs


class MultiTurnTask:
    """What `grpo.task: multi_turn` changes in the stage: the data file, the dataset (case ids as prompts),
    TRL's `rollout_func` (the conversation loop with `multi_turn.limits`) and the multi-turn reward functions."""

    def __init__(self, params: Params, section: GrpoParams, name: str, trainer_cls: type | None,
                 say: Callable[[str], None] = print):
        if trainer_cls is not None and not getattr(trainer_cls, "supports_multi_turn", False):
            raise TrainingError(f"{name} does not support multi-turn ({trainer_cls.__name__} scores single-turn "
                                f"completions): run it with -S grpo.task=single_turn, or train multi-turn with the grpo stage")
        self.file = multi_turn_path(params.data.output_dir, "rl")
        if not self.file.exists():
            raise TrainingError(f"grpo.task is multi_turn but {self.file} does not exist: {MULTI_TURN_FIX}")
        self.params, self.section, self.name, self.say = params, section, name, say

    def fingerprint(self) -> dict[str, Any]:
        return {"multi_turn_limits": self.params.multi_turn.limits.model_dump(mode="json")}

    def fitting(self, records: list[dict[str, Any]], tokenizer: Any) -> list[dict[str, Any]]:
        """The records whose opening leaves room for a message of `max_new_tokens` in `max_total_tokens`: a
        conversation that cannot start has no completion to score. The rest are counted and said."""
        limits = self.params.multi_turn.limits
        room = limits.max_total_tokens - limits.max_new_tokens
        texts = [tokenizer.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True) for r in records]
        lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
        kept = [r for r, n in zip(records, lengths, strict=True) if n <= room]
        if not kept:
            raise TrainingError(f"no multi-turn training case of {self.file} fits multi_turn.limits: the shortest opening "
                                f"is {min(lengths)} tokens, max_total_tokens - max_new_tokens is {room}; raise "
                                "multi_turn.limits.max_total_tokens (the model's context permitting)")
        if len(kept) < len(records):
            self.say(f"{self.name}: {len(records) - len(kept)} of {len(records)} multi-turn cases left out: their "
                     f"opening is longer than max_total_tokens - max_new_tokens = {room} tokens")
        return kept

    def trainer_kwargs(self, tokenizer: Any) -> dict[str, Any]:
        """train_dataset, rollout_func and reward_funcs for the trainer."""
        from datasets import Dataset

        from toolrl.multiturn.answers import case_by_id
        from toolrl.multiturn.loop import Limits
        from toolrl.multiturn.rollouts import bfcl_rollout_func, dataset_rows
        from toolrl.rewards.trl import multi_turn_reward_functions

        records = read_multi_turn(self.file, "rl", self.section.train_limit)
        if not records:
            raise TrainingError(f"{self.file} holds no training cases (curation held every sampled case out for "
                                "evaluation?): raise the bfcl_multi_turn source's limit and rerun curate")
        cases = [case_by_id(r["case_id"]) for r in self.fitting(records, tokenizer)]
        limits = Limits(**self.params.multi_turn.limits.model_dump())
        return {"train_dataset": Dataset.from_list(dataset_rows(cases)), "rollout_func": bfcl_rollout_func(cases, limits),
                "reward_funcs": multi_turn_reward_functions(self.section.reward)}

    def outcome_max(self) -> float | None:
        """The outcome reward's max (what a trajectory BFCL's checker passes gets), None without an outcome term."""
        from toolrl.rewards.multi_turn import TrajectoryScorer

        scorer = TrajectoryScorer(params=self.section.reward)
        return scorer.outcome_range.max if scorer.reward.outcome else None


def rl_records(params: Params, sec: GrpoParams, say: Callable[[str], None]) -> list[dict[str, Any]]:
    """GRPO's single-turn prompts: the curated training records (the first grpo.train_limit), their no-call
    share set to grpo.no_call_share where it is given."""
    records = read_records(split_path(params.data.output_dir, "train"), "rl", sec.train_limit)
    if sec.no_call_share is None:
        return records
    mixed, before, after = no_call_mix(records, sec.no_call_share, sec.seed)
    say(f"grpo.no_call_share={sec.no_call_share}: {after} no-call prompts of {len(mixed)} "
        f"(the curated set had {before} of {len(records)})")
    return mixed


def run_grpo(params: Params, fresh: bool = False, say: Callable[[str], None] = print, *, name: str = STAGE,
             section: GrpoParams | None = None, trainer_cls: type | None = None,
             trainer_kwargs: dict[str, Any] | None = None,
             fingerprint_extra: dict[str, Any] | None = None) -> stage.TrainResult:
    """Train (or resume, or reuse) the GRPO model of these params into `grpo.output_dir`.

    The keyword-only arguments let another GRPO stage reuse this one (toolrl.trm.grpo: `grpo_trm`, whose
    `TrmGRPOTrainer` adds the TRM's turn-level call advantages): its name (MLflow run, metric names), its section (a copy of `grpo` with its own outputs), a `SharedPrefixGRPOTrainer` subclass
    and its extra constructor arguments, and what else its fingerprint holds.
    """
    from trl import GRPOConfig

    from toolrl.hardware import resolve_dtype
    from toolrl.rewards.trl import reward_functions
    from toolrl.training.shared_prefix import SharedPrefixGRPOTrainer

    sec = section or params.grpo
    task = MultiTurnTask(params, sec, name, trainer_cls, say) if sec.task == "multi_turn" else None
    train_file = task.file if task else split_path(params.data.output_dir, "train")
    init = init_folder(params)
    fp = {**stage.fingerprint(params, name, sec, train_file, init), **(task.fingerprint() if task else {}),
          **(fingerprint_extra or {})}
    tokenizer = stage.load_tokenizer(init)
    recorder = RewardRecorder(outcome_max=task.outcome_max() if task else None)
    callback = StageCallback(name, sec.plots_file, recorder, sec.sample_every, sec.sample_rows)

    def build(state: checkpoints.OutputState) -> Any:
        if task:
            data = task.trainer_kwargs(tokenizer)
        else:
            data = {"train_dataset": to_dataset(rl_records(params, sec, say), "rl"),
                    "reward_funcs": reward_functions(sec.reward)}
        data["reward_funcs"] = recorder.wrap(data["reward_funcs"])
        args = GRPOConfig(**config_kwargs(params, state, sec, name))
        trainer = (trainer_cls or SharedPrefixGRPOTrainer)(
            model=str(init), args=args, **data, processing_class=tokenizer, peft_config=stage.lora_config(sec.lora),
            callbacks=[callback], shared_prefix=sec.shared_prefix, loss_rows_at_once=sec.loss_rows_at_once,
            dynamic_sampling=sec.dynamic_sampling, generation_dtype=resolve_dtype(sec.generation_dtype),
            lookup_tokens=sec.lookup_tokens, **(trainer_kwargs or {}))
        # grpo_trm's trainer keeps the last batch's per-call TRM scores: the sample tables show them
        recorder.call_scores = lambda: getattr(trainer, "last_call_scores", None)
        return trainer

    def finish(trainer: Any, state: checkpoints.OutputState, run: Any) -> stage.TrainResult:
        model = stage.save_final_model(trainer, tokenizer, sec.lora, state.output_dir)
        step = trainer.state.global_step
        if not stage.is_main_process():
            return stage.TrainResult(name, str(state.output_dir), step, None)
        metrics = {"global_step": step, "init": sec.init, "task": sec.task,
                   "variant": sec.reward.multi_turn if task else sec.reward.variant,
                   **curve_summary(sec.plots_file), **{k: v for k, v in callback.summary.items() if k == "train_runtime"}}
        return stage.finish(params, sec, name, state, run, model, tokenizer, metrics, plot_rewards(sec.plots_file))

    return stage.run_training(params, stage.TrainingStage(name, "GRPO run", sec, init, fp, build, finish), fresh, say)


def component_columns(rows: list[dict[str, str]]) -> list[str]:
    return sorted({k for r in rows for k in r if k.startswith("rewards/") and k.endswith("/mean")})


def curve_summary(plots_file: str | Path) -> dict[str, Any]:
    """Means over the first and last fifth of the logged steps, per reward column and call statistic:
    the 'does it learn' numbers of the stage."""
    rows = publish.read_csv(plots_file) if Path(plots_file).exists() else []
    out: dict[str, Any] = {"logged_steps": len(rows)}
    if not rows:
        return out
    k = max(1, len(rows) // 5)
    for col in ["reward", *component_columns(rows), "completions/mean_length", "tool_calls/parseable_call_share",
                "tool_calls/mean_calls", "tool_calls/well_formed_share", "tool_calls/abstain_on_no_call",
                "tool_calls/abstain_on_call",
                *sorted({c for r in rows for c in r if c.startswith(("trm/", "multi_turn/", "dynamic_sampling/"))})]:
        vals = [float(r[col]) for r in rows if r.get(col) not in (None, "")]
        if vals:
            first, last = sum(vals[:k]) / len(vals[:k]), sum(vals[-k:]) / len(vals[-k:])
            out[col] = {"first": first, "last": last, "gain": last - first}
    return out


def plot_rewards(plots_file: str | Path) -> Path | None:
    rows = publish.read_csv(plots_file) if Path(plots_file).exists() else []
    if not rows:
        return None
    return publish.plot_columns(plots_file, Path(plots_file).with_suffix(".png"),
                                ["reward", *component_columns(rows)], "GRPO reward per step (mean over completions)",
                                band={"reward": "reward_std"})


def reward_table(plots_file: str | Path) -> str:
    """The reward curve as markdown (Prefect artifact, docs)."""
    rows = publish.read_csv(plots_file) if Path(plots_file).exists() else []
    cols = ["reward", "reward_std", *component_columns(rows), "completions/mean_length",
            "tool_calls/parseable_call_share", "tool_calls/mean_calls"]
    return publish.markdown_table(plots_file, cols) if rows else "(no steps logged)"
