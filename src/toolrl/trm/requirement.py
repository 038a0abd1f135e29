"""The TRM's data requirement (`toolrl trm sizes`): the same TRM trained on several training-set sizes.

The TRM paper asks how many labelled calls a reward model needs; here each size is a `trm` run with
`trm.model.train_limit` set (a seeded sample of the training records; the validation records are
always all of them), into its own folder under `out_dir`, unregistered. The table gives, per size,
the held-out ROC-AUC with its 95 % bootstrap interval, the expected calibration error, F1 and the
steps trained, as `data_requirement.csv` and `data_requirement.md`. Sizes above the training set are
trained on all of it (the table says how many records each run really had).

By default every size trains for `trm.model.max_steps`, so small sizes see their records many times and
large ones perhaps not once. With `epochs`, each size trains for that many passes over its own records
(steps = ceil(epochs x records / records per step)) and is evaluated once, at its last step: the paper's
study compares sizes at equal passes, and one evaluation means no checkpoint is chosen on the held-out
calls the table reports.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolrl.config import Params

COLUMNS = ("size", "train_records", "val_records", "roc_auc", "roc_auc_low", "roc_auc_high", "ece", "f1",
           "accuracy", "global_step")


def size_params(params: Params, size: int, out_dir: Path, epochs: float | None = None,
                available: int | None = None) -> Params:
    """The params of one run: its own output files, this training-set size, no model registration; with
    `epochs`, steps for that many passes over min(size, available) records and one evaluation at the end."""
    run = out_dir / f"n{size}"
    update: dict[str, Any] = {
        "train_limit": size, "output_dir": str(run / "model"), "plots_file": str(run / "trm_train.csv"),
        "metrics_file": str(run / "trm.json"), "calibration_plot": str(run / "trm_calibration.png")}
    if epochs is not None:
        sec = params.trm.model
        records = size if available is None else min(size, available)
        steps = max(1, math.ceil(epochs * records / (sec.per_device_train_batch_size * sec.gradient_accumulation_steps)))
        update |= {"max_steps": steps, "eval_steps": steps}
    model = params.trm.model.model_copy(update=update)
    return params.model_copy(update={
        "trm": params.trm.model_copy(update={"model": model}),
        "tracking": params.tracking.model_copy(update={"register_models": False})})


def data_requirement(params: Params, sizes: list[int], out_dir: str | Path, epochs: float | None = None,
                     say: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Train one TRM per size (restartable: a finished size is reused) and write the table; returns its rows."""
    from toolrl.trm.trainer import run_trm

    if not sizes or min(sizes) < 2:
        raise ValueError(f"training-set sizes must be at least 2 records each, got {sizes}")
    if epochs is not None and epochs <= 0:
        raise ValueError(f"epochs must be positive, got {epochs}")
    out = Path(out_dir)
    available = training_records(params) if epochs is not None else None
    rows = []
    for size in sorted(set(sizes)):
        say(f"data requirement: training the TRM on {size} records")
        m = run_trm(size_params(params, size, out, epochs, available), say=say).metrics
        val = m.get("val", {})
        rows.append({"size": size, "train_records": m.get("train_records"), "val_records": m.get("val_records"),
                     **{k: val.get(k) for k in ("roc_auc", "roc_auc_low", "roc_auc_high", "ece", "f1", "accuracy")},
                     "global_step": m.get("global_step")})
    write_table(rows, out)
    return rows


def training_records(params: Params) -> int:
    """How many records the TRM's training split holds (its non-empty lines)."""
    path = Path(params.trm.data.output_dir) / "train.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `toolrl trm data` (or `dvc repro trm_data`) first")
    with path.open(encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


def write_table(rows: list[dict[str, Any]], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "data_requirement.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)

    def cell(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| train records | ROC-AUC [95 % CI] | ECE | F1 | accuracy | steps |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['train_records']} | {cell(r['roc_auc'])} [{cell(r['roc_auc_low'])}, {cell(r['roc_auc_high'])}] | "
              f"{cell(r['ece'])} | {cell(r['f1'])} | {cell(r['accuracy'])} | {r['global_step']} |" for r in rows]
    val = rows[0]["val_records"] if rows else 0
    (out / "data_requirement.md").write_text(
        f"# TRM data requirement\n\nHeld-out calls: {val} (the same for every size).\n\n" + "\n".join(lines) + "\n",
        encoding="utf-8")
