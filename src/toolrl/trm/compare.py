"""TRMs side by side on the same held-out calls (`toolrl trm compare`).

The `trm` stage and the data-requirement study give each model a ROC-AUC with its own 95 % interval.
Two intervals that overlap do not say two models are alike: the same hard calls pull both down. This
scores the same held-out records (`trm.data.output_dir/val.jsonl`, the seeded `trm.model.val_limit`
sample the `trm` stage measures on) with each model, each read as it was trained (its own
`max_length` and `keep_called_tool`, from its `trm.json`), and gives every model after the first its
paired difference in ROC-AUC to the first: a percentile bootstrap over calls in which each resample
draws the same calls for both models. Written to `compare.md`, `compare.csv` and `scores.jsonl` (one
row per held-out call: id, label, source and each model's score).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolrl.config import Params

COLUMNS = ("model", "roc_auc", "roc_auc_low", "roc_auc_high", "ece", "diff_to_first", "diff_low", "diff_high")


def paired_auc_difference(y: list[int], first: list[float], other: list[float], resamples: int = 2000,
                          seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """(AUC(other) - AUC(first), low, high): the difference and its paired percentile bootstrap interval."""
    import numpy as np

    from toolrl.trm.trainer import bootstrap_indices, rank_auc

    if len(set(y)) < 2:
        raise ValueError("the held-out calls hold one class only: ROC-AUC is undefined")
    y_arr, a, b = np.asarray(y), np.asarray(first, dtype=float), np.asarray(other, dtype=float)
    diffs = [rank_auc(y_arr[i], b[i]) - rank_auc(y_arr[i], a[i]) for i in bootstrap_indices(y, resamples, seed)]
    tail = (1 - level) / 2 * 100
    return (rank_auc(y_arr, b) - rank_auc(y_arr, a), float(np.percentile(diffs, tail)),
            float(np.percentile(diffs, 100 - tail)))


def compare_trms(params: Params, folders: list[str | Path], out_dir: str | Path,
                 say: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Score the held-out records with each TRM in `folders`; write and return the table (see the module doc)."""
    from toolrl.trm.score import TrmScorer
    from toolrl.trm.steps import read_steps
    from toolrl.trm.trainer import calibration, rank_auc, roc_auc_interval, seeded_sample

    if len(folders) < 2 or len({str(f) for f in folders}) < len(folders):
        raise ValueError(f"compare needs two or more different TRM folders, got {[str(f) for f in folders]}")
    sec = params.trm.model
    records = seeded_sample(read_steps(Path(params.trm.data.output_dir) / "val.jsonl"), sec.val_limit, sec.seed)
    y = [r["label"] for r in records]
    if len(set(y)) < 2:
        raise ValueError("the held-out records hold one class only: ROC-AUC is undefined; raise trm.model.val_limit")
    steps = [(r["prompt"], r["prefix"], r["call"]) for r in records]
    scores: dict[str, list[float]] = {}
    for folder in folders:
        say(f"trm compare: scoring {len(steps)} held-out calls with {folder}")
        scores[str(folder)] = TrmScorer(folder, batch_size=sec.per_device_eval_batch_size).score_steps(steps)
    first = scores[str(folders[0])]
    rows = []
    for k, (name, p) in enumerate(scores.items()):
        low, high = roc_auc_interval(y, p)
        diff, diff_low, diff_high = paired_auc_difference(y, first, p) if k else (None, None, None)
        rows.append({"model": name, "roc_auc": rank_auc(y, p), "roc_auc_low": low, "roc_auc_high": high,
                     "ece": calibration(y, p)["ece"], "diff_to_first": diff, "diff_low": diff_low,
                     "diff_high": diff_high})
    write(rows, records, scores, Path(out_dir))
    return rows


def write(rows: list[dict[str, Any]], records: list[dict[str, Any]], scores: dict[str, list[float]], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "compare.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with (out / "scores.jsonl").open("w", encoding="utf-8") as fh:
        for k, r in enumerate(records):
            fh.write(json.dumps({"id": r["id"], "label": r["label"], "source": r["source"],
                                 "scores": {m: s[k] for m, s in scores.items()}}) + "\n")

    def verdict(r: dict[str, Any]) -> str:
        if r["diff_to_first"] is None:
            return "(the reference)"
        word = "higher" if r["diff_low"] > 0 else "lower" if r["diff_high"] < 0 else "no difference called"
        return f"{r['diff_to_first']:+.3f} [{r['diff_low']:+.3f}, {r['diff_high']:+.3f}]: {word}"

    lines = ["| TRM | ROC-AUC [95 % CI] | ECE | paired difference to the first [95 % CI] |", "|---|---|---|---|"]
    lines += [f"| `{r['model']}` | {r['roc_auc']:.3f} [{r['roc_auc_low']:.3f}, {r['roc_auc_high']:.3f}] | "
              f"{r['ece']:.3f} | {verdict(r)} |" for r in rows]
    positives = sum(r["label"] for r in records)
    (out / "compare.md").write_text(
        f"# TRMs on the same held-out calls\n\n{len(records)} held-out calls ({positives} good, "
        f"{len(records) - positives} bad). A difference is called only when its interval excludes 0.\n\n"
        + "\n".join(lines) + "\n", encoding="utf-8")
