"""The `trm` stage: train the TRM on `data/trm/` with transformers' Trainer, measure it, register it.

- Loss: cross-entropy at the labelled positions only (one per step record), weighted by inverse class
  frequency of the training records when `class_balance` (a rare class counts as much as a common one).
  Given to the Trainer as its `compute_loss_func`.
- Evaluation every `eval_steps` on the validation records: accuracy, precision, recall, F1, ROC-AUC;
  the checkpoint with the best validation AUC is kept (`metric_for_best_model`) and training stops
  after `early_stopping_patience` evaluations without a better one (`EarlyStoppingCallback`).
- Final measures of the best model on the validation records (held-out prompts): the metrics above,
  per source (policy calls, reference calls, hard negatives), the agreement with the rule labels on
  the policy's own calls, and a calibration plot. All in MLflow (`trm/<metric>`), in
  `reports/metrics/trm.json`, and the model registered as `toolrl-trm` (a pyfunc that scores calls).
- Speed (toolrl.trm.prefix_trainer): a batch's records that share a prompt compute it once
  (`shared_prefix`: same numbers up to rounding), and, optionally (`group_by_prompt`, off by default: it
  lowered the held-out AUC at the default budget), training batches are drawn prompt by prompt so that a
  batch shares its prompts.
- Restartable like the training stages: same fingerprint resumes from the last checkpoint into the
  same MLflow run; a finished run is not redone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolrl.config import Params
from toolrl.hardware import precision_args
from toolrl.training.right_padding import causal_without_right_padding_mask
from toolrl.trm.model import ID2LABEL, backbone_folder, init_trm, save_trm
from toolrl.trm.steps import IGNORE, encode_step

SAVE_TOTAL_LIMIT = 2  # the best checkpoint (load_best_model_at_end) and the latest

STAGE = "trm"
NOT_TRAINING = {"plots_file", "metrics_file", "calibration_plot", "register_as", "logging_steps",
                "per_device_eval_batch_size", "threshold", "shared_prefix"}


class WeightedLastTokenLoss:
    """Cross-entropy over the labelled positions, with optional per-class weights."""

    def __init__(self, class_weights: list[float] | None = None):
        self.class_weights = class_weights

    def __call__(self, outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        import torch
        import torch.nn.functional as F

        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        mask = labels != IGNORE
        weight = (torch.tensor(self.class_weights, dtype=torch.float32, device=logits.device)
                  if self.class_weights else None)
        return F.cross_entropy(logits[mask].float(), labels[mask], weight=weight)


def class_weights(labels: list[int]) -> list[float]:
    """Inverse-frequency weights, normalised so that a balanced set gets [1, 1]."""
    n, pos = len(labels), sum(labels)
    if pos == 0 or pos == n:
        raise ValueError(f"the TRM training records hold only {'negatives' if pos == 0 else 'positives'}: raise "
                         "trm.data.prompts or trm.data.hard_negatives_per_call, or turn on reference_positives")
    return [n / (2 * (n - pos)), n / (2 * pos)]


def classification_metrics(y: list[int], p: list[float], threshold: float = 0.5) -> dict[str, float]:
    """accuracy, precision, recall, F1 (class 1 = good call), ROC-AUC (0.5 when one class only), Brier."""
    from sklearn.metrics import (
        accuracy_score,
        brier_score_loss,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    if not y:
        return {}
    pred = [int(x >= threshold) for x in p]
    precision, recall, f1, _ = precision_recall_fscore_support(y, pred, average="binary", zero_division=0)
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "roc_auc": float(roc_auc_score(y, p)) if len(set(y)) == 2 else 0.5,
        "brier": float(brier_score_loss(y, p, pos_label=1)),
        "positive_rate": sum(y) / len(y),
        "n": float(len(y)),
    }


def probs_at_labels(logits: Any, labels: Any) -> Any:
    """`preprocess_logits_for_metrics`: keep P(good call) per position (not the whole logits)."""
    import torch

    if isinstance(logits, tuple):
        logits = logits[0]
    return torch.softmax(logits.float(), dim=-1)[..., 1]


def make_compute_metrics(threshold: float) -> Callable[[Any], dict[str, float]]:
    def compute(pred: Any) -> dict[str, float]:
        import numpy as np

        probs, labels = np.asarray(pred.predictions), np.asarray(pred.label_ids)
        mask = labels != IGNORE
        return classification_metrics(labels[mask].astype(int).tolist(), probs[mask].astype(float).tolist(),
                                      threshold)

    return compute


def encode_records(tokenizer: Any, records: list[dict[str, Any]], max_length: int, desc: str,
                   keep_called_tool: bool = False) -> Any:
    from datasets import Dataset
    from tqdm.auto import tqdm

    rows = [encode_step(tokenizer, r["prompt"], r["prefix"], r["call"], r["label"], max_length, keep_called_tool)
            for r in tqdm(records, desc=desc, unit="step")]
    return Dataset.from_list(rows)


def calibration_plot(y: list[int], p: list[float], path: str | Path, bins: int = 10) -> Path | None:
    """Reliability diagram: mean predicted score vs. observed share of good calls per score bin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve

    from toolrl.training.publish import save_figure

    if len(set(y)) < 2:
        return None
    frac, mean = calibration_curve(y, p, n_bins=bins, strategy="uniform")
    fig, (ax, hx) = plt.subplots(2, 1, figsize=(5, 6), height_ratios=[3, 1], sharex=True)
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    ax.plot(mean, frac, marker="o", label="TRM")
    ax.set_ylabel("share of good calls")
    ax.set_title(f"TRM calibration ({len(y)} held-out steps)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    hx.hist([x for x, t in zip(p, y, strict=True) if t == 1], bins=bins, range=(0, 1), alpha=0.6, label="good")
    hx.hist([x for x, t in zip(p, y, strict=True) if t == 0], bins=bins, range=(0, 1), alpha=0.6, label="bad")
    hx.set_xlabel("TRM score")
    hx.legend(fontsize=8)
    return save_figure(fig, path)


def rank_auc(y: Any, p: Any) -> float:
    """ROC-AUC as the Mann-Whitney U (ties count half), as roc_auc_score; y must hold both classes."""
    import numpy as np
    from scipy.stats import rankdata

    y, p = np.asarray(y), np.asarray(p, dtype=float)
    pos = int(y.sum())
    return float((rankdata(p)[y == 1].sum() - pos * (pos + 1) / 2) / (pos * (len(y) - pos)))


def bootstrap_indices(y: list[int], resamples: int, seed: int) -> Any:
    """Seeded resamples of the held-out calls (index arrays); those that draw one class only are skipped."""
    import numpy as np

    y_arr = np.asarray(y)
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        idx = rng.integers(0, len(y_arr), len(y_arr))
        if 0 < y_arr[idx].sum() < len(idx):
            yield idx


def roc_auc_interval(y: list[int], p: list[float], resamples: int = 2000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the ROC-AUC over held-out calls (seeded). (nan, nan) when y
    holds one class."""
    import numpy as np

    if len(set(y)) < 2:
        return float("nan"), float("nan")
    y_arr, p_arr = np.asarray(y), np.asarray(p, dtype=float)
    aucs = [rank_auc(y_arr[idx], p_arr[idx]) for idx in bootstrap_indices(y, resamples, seed)]
    tail = (1 - level) / 2 * 100
    return float(np.percentile(aucs, tail)), float(np.percentile(aucs, 100 - tail))


def calibration(y: list[int], p: list[float], bins: int = 10) -> dict[str, Any]:
    """Reliability bins (equal width on the score) and the expected calibration error: the
    calls-weighted mean gap between a bin's mean score and its share of good calls."""
    rows = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        idx = [i for i, x in enumerate(p) if lo <= x < hi or (b == bins - 1 and x == 1.0)]
        if idx:
            rows.append({"low": lo, "high": hi, "n": len(idx), "mean_score": sum(p[i] for i in idx) / len(idx),
                         "good_share": sum(y[i] for i in idx) / len(idx)})
    ece = sum(r["n"] * abs(r["mean_score"] - r["good_share"]) for r in rows) / max(len(y), 1)
    return {"ece": ece, "bins": rows}


def held_out_measures(scores: list[float], records: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """Metrics on all validation records (ROC-AUC with its 95 % bootstrap interval, calibration), per
    source, and agreement with the rule labels on the policy's own calls."""
    y = [r["label"] for r in records]
    out: dict[str, Any] = {"val": classification_metrics(y, scores, threshold)}
    if y:
        low, high = roc_auc_interval(y, scores)
        out["val"].update({"roc_auc_low": low, "roc_auc_high": high})
        cal = calibration(y, scores)
        out["val"]["ece"] = cal["ece"]
        out["calibration_bins"] = cal["bins"]
    for source in sorted({r["source"] for r in records}):
        idx = [i for i, r in enumerate(records) if r["source"] == source]
        out[f"val_{source}"] = classification_metrics([y[i] for i in idx], [scores[i] for i in idx], threshold)
    policy = [i for i, r in enumerate(records) if r["source"] == "policy" and r.get("rule_label") in (0, 1)]
    if policy:
        agree = sum(int(scores[i] >= threshold) == records[i]["rule_label"] for i in policy)
        out["rule_agreement"] = agree / len(policy)
        out["rule_agreement_n"] = len(policy)
    return out


def seeded_sample(records: list[dict[str, Any]], limit: int | None, seed: int) -> list[dict[str, Any]]:
    """`limit` records drawn by the seed, in file order (all of them when limit is None or not smaller)."""
    if limit is None or limit >= len(records):
        return records
    import random

    return [records[i] for i in sorted(random.Random(seed).sample(range(len(records)), limit))]


def fingerprint(params: Params, backbone: Path, train_file: Path, val_file: Path) -> dict[str, Any]:
    from toolrl.training.data import file_digest

    return {"stage": STAGE, "section": params.trm.model.model_dump(mode="json", exclude=NOT_TRAINING),
            "backbone": str(backbone), "train_data": file_digest(train_file), "val_data": file_digest(val_file)}


def run_trm(params: Params, fresh: bool = False, say: Callable[[str], None] = print) -> Any:
    """Train (or resume, or reuse) the TRM of these params into `trm.model.output_dir` (a `TrainResult`;
    its `plot_png` is the calibration plot)."""
    from transformers import (
        DataCollatorForTokenClassification,
        EarlyStoppingCallback,
        TrainingArguments,
    )

    from toolrl.training import checkpoints
    from toolrl.training.callbacks import StageCallback
    from toolrl.training.stage import TrainingStage, TrainResult, record, run_training
    from toolrl.trm.prefix_trainer import TrmTrainer, prompt_index_groups
    from toolrl.trm.steps import read_steps
    from toolrl.trm.tracking import log_trm

    sec = params.trm.model
    data_dir = Path(params.trm.data.output_dir)
    train_file, val_file = data_dir / "train.jsonl", data_dir / "val.jsonl"
    train_records, val_records = read_steps(train_file), read_steps(val_file)
    train_records = seeded_sample(train_records, sec.train_limit, sec.seed)
    val_records = seeded_sample(val_records, sec.val_limit, sec.seed)
    if not val_records:
        raise ValueError(f"{val_file} is empty: raise trm.data.prompts or trm.data.val_fraction")
    backbone = backbone_folder(params)
    callback = StageCallback(STAGE, sec.plots_file)
    weights = class_weights([r["label"] for r in train_records]) if sec.class_balance else None

    def build(state: checkpoints.OutputState) -> Any:
        model, tokenizer = init_trm(backbone, params.model.dtype, seed=sec.seed)
        tokenizer.padding_side = "right"  # positions must not shift: scoring feeds unpadded-left sequences too
        causal_without_right_padding_mask(model)  # causal backbones: the padding needs no mask (1.3x a step on CPU)
        train_ds = encode_records(tokenizer, train_records, sec.max_length, "encode train", sec.keep_called_tool)
        # a prompt's records side by side, so an evaluation batch computes its prompt once (the metrics
        # are order-free, eval_loss a mean of batch means moves slightly; held_out_measures keeps the file's order)
        val_ds = encode_records(tokenizer, [val_records[i] for g in prompt_index_groups(val_records) for i in g],
                                sec.max_length, "encode val", sec.keep_called_tool)
        args = TrainingArguments(
            output_dir=str(state.checkpoint_dir), run_name=STAGE, max_steps=sec.max_steps,
            learning_rate=sec.learning_rate, per_device_train_batch_size=sec.per_device_train_batch_size,
            per_device_eval_batch_size=sec.per_device_eval_batch_size,
            gradient_accumulation_steps=sec.gradient_accumulation_steps, weight_decay=sec.weight_decay,
            warmup_steps=sec.warmup_ratio, lr_scheduler_type="linear", logging_steps=sec.logging_steps,
            eval_strategy="steps", eval_steps=sec.eval_steps, save_strategy="steps", save_steps=sec.eval_steps,
            save_total_limit=SAVE_TOTAL_LIMIT, load_best_model_at_end=True, metric_for_best_model="roc_auc",
            greater_is_better=True, seed=sec.seed, report_to=["mlflow"], remove_unused_columns=False,
            **precision_args(sec.bf16),
        )
        return TrmTrainer(
            model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds, processing_class=tokenizer,
            shared_prefix=sec.shared_prefix,
            prompt_groups=prompt_index_groups(train_records) if sec.group_by_prompt else None,
            data_collator=DataCollatorForTokenClassification(tokenizer),
            compute_loss_func=WeightedLastTokenLoss(weights),
            compute_metrics=make_compute_metrics(sec.threshold), preprocess_logits_for_metrics=probs_at_labels,
            callbacks=[callback, EarlyStoppingCallback(early_stopping_patience=sec.early_stopping_patience)],
        )

    def finish(trainer: Any, state: checkpoints.OutputState, run: Any) -> TrainResult:
        from toolrl.trm.score import TrmScorer

        best = trainer.state.best_model_checkpoint
        step = trainer.state.global_step
        meta = {"backbone": str(backbone), "max_length": sec.max_length, "keep_called_tool": sec.keep_called_tool,
                "threshold": sec.threshold,
                "labels": ID2LABEL, "global_step": step, "best_checkpoint": best,
                "best_val_roc_auc": trainer.state.best_metric, "mlflow_run_id": run.info.run_id}
        save_trm(trainer.model, trainer.processing_class, state.output_dir, meta)
        scorer = TrmScorer(state.output_dir, batch_size=sec.per_device_eval_batch_size)
        scores = scorer.score_steps([(r["prompt"], r["prefix"], r["call"]) for r in val_records])
        png = calibration_plot([r["label"] for r in val_records], scores, sec.calibration_plot)
        metrics: dict[str, Any] = {
            "global_step": step, "stopped_early": step < sec.max_steps, "best_checkpoint_step":
            checkpoints.checkpoint_step(Path(best)) if best and (Path(best) / "trainer_state.json").exists() else None,
            "train_records": len(train_records), "val_records": len(val_records), "class_weights": weights,
            **held_out_measures(scores, val_records, sec.threshold),
        }
        _log_flat(metrics, step)
        return record(sec, STAGE, state, run, metrics, png, False,
                      lambda: log_trm(state.output_dir, sec.register_as, params.tracking))

    stage = TrainingStage(STAGE, "TRM", sec, backbone, fingerprint(params, backbone, train_file, val_file), build,
                          finish, save_total_limit=SAVE_TOTAL_LIMIT)
    return run_training(params, stage, fresh, say)


def _log_flat(metrics: dict[str, Any], step: int) -> None:
    from toolrl.dicts import numbers
    from toolrl.tracking import log_metrics

    log_metrics(STAGE, numbers(metrics, bools=False), step=step)
