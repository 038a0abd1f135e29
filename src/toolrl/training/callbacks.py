"""What a training run reports besides TRL's own MLflow logging.

- `call_stats`: how many completions hold a parseable tool call and how many calls they make (a
  policy that learns to game the reward often shows it here first: calls vanish or multiply).
- `RewardRecorder`: wraps the reward library's TRL reward functions without changing them; keeps the
  last batch (completions, ground truths, each component's rewards) for the sample tables, and
  reports `call_stats` through TRL's `log_metric` hook so they land beside `reward` in the logs.
  Multi-turn batches (a `trajectory` per completion, `grpo.task: multi_turn`) report `multiturn.trajectory.summary`
  instead, and the outcome rate once the outcome reward is known; their sample tables hold one row
  per call of each sampled trajectory (`trajectory_table`).
- `StageCallback`: every log step, the stage's curated metrics to MLflow as `<stage>/<name>` and to
  a CSV for `dvc plots` (rows past a resumed checkpoint are dropped, then rewritten); sample
  completions as an MLflow table every `sample_every` steps.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from toolrl import formats

if TYPE_CHECKING:  # imported where used: sft and the TRM read this module and never see a trajectory
    from toolrl.multiturn.trajectory import Trajectory

OUTCOME = "outcome_reward"  # the multi-turn outcome reward's name (toolrl.rewards.trl.TrajectoryReward)

# Keys of TRL's logs worth keeping per stage (prefix match); the rest stays in TRL's own MLflow metrics.
KEEP = {
    "sft": ("loss", "learning_rate", "grad_norm", "mean_token_accuracy", "entropy", "num_tokens"),
    "grpo": ("loss", "learning_rate", "grad_norm", "reward", "reward_std", "rewards/", "completions/mean_length",
             "completions/clipped_ratio", "tool_calls/", "multi_turn/", "kl", "entropy", "clip_ratio/region_mean",
             "frac_reward_zero_std", "dynamic_sampling/", "step_time"),  # TRL's step wall time, generation included
}
# The TRM stages (toolrl.trm): the classifier's training and validation curves; GRPO's keys plus the
# TRM's call statistics and scores for TRM-guided GRPO.
KEEP["trm"] = ("loss", "learning_rate", "grad_norm", "eval_loss", "eval_accuracy", "eval_precision", "eval_recall",
               "eval_f1", "eval_roc_auc", "eval_brier")
KEEP["grpo_trm"] = (*KEEP["grpo"], "trm/")
SUMMARY_KEYS = ("train_runtime", "train_loss", "train_samples_per_second", "train_steps_per_second")


def call_stats(texts: Sequence[str]) -> dict[str, float]:
    """Share of completions with a parseable, non-empty tool call block; mean calls over all of them;
    share that are well-formed (parse cleanly, have a <think> and a call or a response)."""
    if not texts:
        return {"parseable_call_share": 0.0, "mean_calls": 0.0, "well_formed_share": 0.0}
    parsed = [formats.parse(t) for t in texts]
    with_call = [p for p in parsed if p.ok and p.calls]
    well_formed = [p for p in parsed if p.ok and p.thought is not None and (p.calls or p.response is not None)]
    return {
        "parseable_call_share": len(with_call) / len(parsed),
        "mean_calls": sum(len(p.calls) for p in parsed if p.ok) / len(parsed),
        "well_formed_share": len(well_formed) / len(parsed),
    }


def abstain_stats(texts: Sequence[str], ground_truth: Sequence[Any]) -> dict[str, float]:
    """Abstaining by prompt kind: the share of the batch's prompts whose ground truth has no call, and the
    share of completions without a parseable call among those for no-call prompts (abstaining where it is
    right) and among those for call prompts (where it is wrong); a kind the batch lacks is left out (not
    NaN: a step whose values are all NaN is logged by TRL as None, which MLflow refuses with a warning).
    GRPO trades one against the other (docs/RESULTS.md)."""
    kinds = [bool(formats.parse(gt).calls) if isinstance(gt, str) else None for gt in ground_truth]
    known = [(k, t) for k, t in zip(kinds, texts, strict=True) if k is not None]
    if not known:
        return {}

    out = {"no_call_prompt_share": sum(not k for k, _ in known) / len(known)}
    for name, kind in (("abstain_on_no_call", False), ("abstain_on_call", True)):
        rows = [t for k, t in known if k is kind]
        if rows:
            out[name] = sum(not (p.ok and p.calls) for p in map(formats.parse, rows)) / len(rows)
    return out


def trajectory_table(trajectories: Sequence[Trajectory], rewards: dict[str, list[float | None]],
                     step: int | None, call_scores: Sequence[Sequence[dict[str, Any]]] | None = None,
                     ) -> dict[str, list[Any]]:
    """One row per call of each trajectory (a message without a call is one row with an empty call):
    where it happened (turn, message), what the model wrote and called, what came back, the
    trajectory's rewards, and with `call_scores` (grpo_trm's `last_call_scores`: per trajectory, the
    TRM's score of each call with its turn and message) a `trm_score` column, and a `call_advantage`
    column (the call's normalised advantage, which grpo_trm adds to the call's tokens times
    `trm.grpo.alpha`: turn-level and pooled runs differ here). The TRM also scores the call lines of a
    message the loop could not parse (never run; the `error` column says why): they are rows of their
    own, with the call text the TRM read."""
    table: dict[str, list[Any]] = {k: [] for k in ("step", "rollout", "case_id", "stop", "turn", "user", "message",
                                                   "text", "call", "result", "error")}
    table.update({f"reward/{name}": [] for name in rewards})
    if call_scores is not None:
        table["trm_score"], table["call_advantage"] = [], []
    for i, t in enumerate(trajectories):
        scored = _scores_by_message(call_scores[i] if call_scores is not None and i < len(call_scores) else [])
        messages = iter(range(sum(len(turn.steps) for turn in t.turns)))  # numbered across the conversation
        for turn_no, turn in enumerate(t.turns):
            for msg_no, msg in enumerate(turn.steps):
                scored_calls = scored.get(next(messages), [])
                unparsed = [str(c["call"]) for c in scored_calls] if msg.error and not msg.calls else []
                calls = [c.to_json() for c in msg.calls] or unparsed or [""]
                results = msg.results if msg.calls else [msg.results[0] if msg.results else ""]
                for k, (call, result) in enumerate(zip(calls, results + [""] * (len(calls) - len(results)),
                                                       strict=False)):
                    row = {"step": step, "rollout": i, "case_id": t.case_id, "stop": t.stop, "turn": turn_no,
                           "user": turn.user[-500:], "message": msg_no, "text": msg.text[-2000:], "call": call,
                           "result": result[-1000:], "error": msg.error or ""}
                    if call_scores is not None:
                        entry = scored_calls[k] if call and k < len(scored_calls) else {}
                        row["trm_score"], row["call_advantage"] = entry.get("score"), entry.get("advantage")
                    row.update({f"reward/{name}": values[i] for name, values in rewards.items()})
                    for key, value in row.items():
                        table[key].append(value)
    return table


def _scores_by_message(calls: Sequence[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Model message number in the conversation -> that message's scored calls, in order."""
    out: dict[int, list[dict[str, Any]]] = {}
    for c in calls:
        out.setdefault(int(c["message"]), []).append(c)
    return out


class _Observed:
    """One reward function, observed. Keeps the wrapped function's name: TRL names the
    `rewards/<name>/mean` metrics after it."""

    def __init__(self, fn: Callable[..., list[float]], recorder: RewardRecorder, first: bool):
        from trl.trainer.utils import get_callable_name

        self.fn, self.recorder, self.first = fn, recorder, first
        self.__name__ = get_callable_name(fn)

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        rewards = self.fn(prompts=prompts, completions=completions, **kwargs)
        if self.first:
            self.recorder.see_batch(prompts, completions, kwargs)
        self.recorder.rewards[self.__name__] = [None if r is None else float(r) for r in rewards]
        if self.__name__ == OUTCOME and self.recorder.outcome_max is not None and callable(kwargs.get("log_metric")):
            passed = [r is not None and r >= self.recorder.outcome_max for r in rewards]
            kwargs["log_metric"]("multi_turn/outcome_rate", sum(passed) / max(1, len(passed)))
        return rewards


class RewardRecorder:
    """Observes a list of TRL reward functions; `wrap` returns them, observed, in the same order."""

    def __init__(self, outcome_max: float | None = None) -> None:
        # multi-turn: the outcome reward's max, what a trajectory BFCL's checker passes gets
        self.outcome_max = outcome_max
        self.trajectories: list[Trajectory] = []
        self.step: int | None = None
        self.prompts: list[Any] = []
        self.completions: list[str] = []
        self.ground_truth: list[Any] = []
        self.rewards: dict[str, list[float | None]] = {}
        # set by the stage when its trainer scores calls (grpo_trm): the last batch's per-call TRM scores
        self.call_scores: Callable[[], list[list[dict[str, Any]]] | None] = lambda: None

    def wrap(self, fns: Sequence[Callable[..., list[float]]]) -> list[_Observed]:
        return [_Observed(fn, self, first=(i == 0)) for i, fn in enumerate(fns)]

    def see_batch(self, prompts: list, completions: list, kwargs: dict[str, Any]) -> None:
        state = kwargs.get("trainer_state")
        self.step = getattr(state, "global_step", None)
        self.prompts = list(prompts)
        self.completions = [formats.assistant_text(c) for c in completions]
        self.ground_truth = list(kwargs.get("ground_truth") or [None] * len(prompts))
        self.rewards = {}
        raw = kwargs.get("trajectory")
        self.trajectories = []
        if raw:
            from toolrl.multiturn.trajectory import Trajectory

            self.trajectories = [t if isinstance(t, Trajectory) else Trajectory.from_dict(t) for t in raw]
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            from toolrl.multiturn.trajectory import summary

            stats = (("multi_turn", summary(self.trajectories)) if self.trajectories
                     else ("tool_calls", {**call_stats(self.completions),
                                          **abstain_stats(self.completions, self.ground_truth)}))
            for name, value in stats[1].items():
                log_metric(f"{stats[0]}/{name}", value)

    def table(self, rows: int) -> dict[str, list[Any]]:
        """The last batch as columns for mlflow.log_table (multi-turn: the first `rows` trajectories)."""
        if self.trajectories:
            scores = self.call_scores()
            return trajectory_table(self.trajectories[:rows], {k: v[:rows] for k, v in self.rewards.items()}, self.step,
                                    scores[:rows] if scores else None)
        n = min(rows, len(self.completions))
        stats = [formats.parse(c) for c in self.completions[:n]]
        table: dict[str, list[Any]] = {
            "step": [self.step] * n,
            "user": [_last_user(p) for p in self.prompts[:n]],
            "completion": self.completions[:n],
            "ground_truth": self.ground_truth[:n],
            "parse_error": [p.error or "" for p in stats],
            "n_calls": [len(p.calls) for p in stats],
        }
        for name, values in self.rewards.items():
            table[f"reward/{name}"] = values[:n]
        return table


def _last_user(prompt: Any) -> str:
    """The dialogue part of a prompt (the system prompt, listing tools, is the same for a whole row group)."""
    if isinstance(prompt, list) and prompt:
        return str(prompt[-1].get("content", ""))[-2000:]
    return str(prompt)[-2000:]


def _keep(stage: str, key: str) -> bool:
    return any(key == k or (k.endswith("/") and key.startswith(k)) for k in KEEP[stage])


class MetricsCsv:
    """Per-step metrics in one CSV (`step` + one column per metric): the format `dvc plots` reads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []

    def add(self, step: int, values: dict[str, float]) -> None:
        self.rows.append({"step": step, **values})
        self.write()

    def write(self) -> None:
        columns = ["step"]
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)


class StageCallback(TrainerCallback):
    def __init__(self, stage: str, plots_file: str | Path, recorder: RewardRecorder | None = None,
                 sample_every: int = 10, sample_rows: int = 8):
        self.stage = stage
        self.csv = MetricsCsv(plots_file)
        self.recorder = recorder
        self.sample_every = sample_every
        self.sample_rows = sample_rows
        self.summary: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        # The rows so far come from the trainer's log history (restored from the checkpoint on a
        # resume), not from the CSV on disk: DVC may have deleted that with the stage's other outs,
        # and rows a killed process wrote past its checkpoint must go.
        if state.is_world_process_zero:
            self.csv.rows = [{"step": entry["step"], **values} for entry in state.log_history
                             if entry.get("step", 0) <= state.global_step and (values := self._values(entry))]
            self.csv.write()

    def _values(self, logs: dict[str, Any]) -> dict[str, float]:
        """The per-step metrics of one log entry that the CSV keeps (none for the end-of-run summary)."""
        if any(k in logs for k in SUMMARY_KEYS):
            return {}
        return {k: float(v) for k, v in logs.items()
                if _keep(self.stage, k) and isinstance(v, int | float) and math.isfinite(float(v))}

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if any(k in logs for k in SUMMARY_KEYS):
            self.summary.update({k: float(v) for k, v in logs.items() if isinstance(v, int | float)})
            return
        values = self._values(logs)
        if not values:
            return
        self.last = values
        self.csv.add(state.global_step, values)
        _log_mlflow({f"{self.stage}/{k}": v for k, v in values.items()}, state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or self.recorder is None or not self.recorder.completions:
            return
        step = state.global_step
        if step == 1 or step % self.sample_every == 0 or step == state.max_steps:
            log_table(self.recorder.table(self.sample_rows), f"samples/{self.stage}_step_{step:06d}.json")


def _log_mlflow(metrics: dict[str, float], step: int) -> None:
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.log_metrics(metrics, step=step)


def log_table(table: dict[str, list[Any]], artifact_file: str) -> None:
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.log_table(data=table, artifact_file=artifact_file)
