"""A finished stage's outputs beyond the model folder: metrics file, plot, MLflow model + registry.

The model is logged with MLflow's transformers flavor (a text-generation pipeline, loadable offline
with `mlflow.transformers.load_model` or as a pyfunc) from the loaded objects: MLflow 3.17's path
form cannot read transformers 5 task metadata. Pip requirements are pinned to the versions that
trained it, so serving never resolves a different stack.
"""

from __future__ import annotations

import csv
import importlib.metadata as md
import json
from pathlib import Path
from typing import Any

from toolrl.config import TrackingParams

RUNTIME_PACKAGES = ("torch", "transformers", "tokenizers", "safetensors", "accelerate")
REGISTRY_ALIAS = "candidate"  # set on every new version; evaluation decides what gets promoted


def pip_requirements(extra: tuple[str, ...] = ()) -> list[str]:
    """`pkg==version` for the serving stack; local version labels (torch's `+cpu`) are dropped, since
    an index serving the model's host (CUDA wheels, PyPI) does not carry them."""
    return [f"{pkg}=={md.version(pkg).split('+')[0]}" for pkg in (*RUNTIME_PACKAGES, *extra)]


def log_model(model: Any, tokenizer: Any, register_as: str | None, tracking: TrackingParams) -> dict[str, Any]:
    """Log the model to the active run; register it (alias `candidate`) unless registration is off."""
    import mlflow

    name = register_as if tracking.register_models else None
    # MLflow fetches a model card and licence from the Hugging Face hub for any name that looks like a
    # hub id; a relative folder such as `models/sft` does, and offline each lookup retries for ~45 s.
    # An absolute path is recognised as local and skipped.
    source = Path(str(getattr(model, "name_or_path", "") or ""))
    if str(source) and source.exists():
        model.name_or_path = model.config.name_or_path = str(source.resolve())
    info = mlflow.transformers.log_model(
        transformers_model={"model": model, "tokenizer": tokenizer},
        name="model",
        task="text-generation",
        pip_requirements=pip_requirements(),
        registered_model_name=name,
    )
    return registered(info, name)


def registered(info: Any, name: str | None) -> dict[str, Any]:
    """The logged model's URI and, when it was registered, its version, given the `candidate` alias."""
    import mlflow

    out: dict[str, Any] = {"model_uri": info.model_uri}
    version = getattr(info, "registered_model_version", None)
    if name and version is not None:
        mlflow.MlflowClient().set_registered_model_alias(name, REGISTRY_ALIAS, str(version))
        out.update(registered_model=name, version=int(version))
    return out


def write_metrics(path: str | Path, metrics: dict[str, Any]) -> Path:
    """The stage's final numbers as JSON (`dvc metrics` reads it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return path


def read_csv(path: str | Path) -> list[dict[str, str]]:
    with Path(path).open(newline="") as fh:
        return list(csv.DictReader(fh))


def save_figure(fig: Any, png_path: str | Path, ax: Any = None, xlabel: str | None = None,
                title: str | None = None) -> Path:
    """Label, grid and legend `ax` (when given), write the figure as a PNG (folders made) and close it."""
    import matplotlib.pyplot as plt

    if ax is not None:
        if xlabel:
            ax.set_xlabel(xlabel)
        if title:
            ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return png_path


def plot_columns(csv_path: str | Path, png_path: str | Path, columns: list[str], title: str,
                 band: dict[str, str] | None = None) -> Path | None:
    """Plot `columns` of a per-step CSV against `step` (`band`: column -> its std column, shaded)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_csv(csv_path)
    columns = [c for c in columns if any(r.get(c) not in (None, "") for r in rows)]
    if not rows or not columns:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for col in columns:
        pts = [(float(r["step"]), float(r[col])) for r in rows if r.get(col) not in (None, "")]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        ax.plot(xs, ys, marker="o", markersize=3, label=col)
        std_col = (band or {}).get(col)
        if std_col:
            sd = [float(r[std_col]) if r.get(std_col) not in (None, "") else 0.0
                  for r in rows if r.get(col) not in (None, "")]
            ax.fill_between(xs, [y - s for y, s in zip(ys, sd, strict=True)],
                            [y + s for y, s in zip(ys, sd, strict=True)], alpha=0.15,
                            label=f"{col} ± {std_col} (spread over the step's completions)")
    return save_figure(fig, png_path, ax, "step", title)


MLFLOW_SOURCE = "mlflow:"
# What a reading of a GRPO run rests on (docs/RESULTS.md): is it learning, is it calling, how many
# groups carry no signal, is it still exploring, how far has it moved.
WINDOW_COLUMNS = ("reward", "rewards/correctness_reward/mean", "tool_calls/mean_calls", "frac_reward_zero_std",
                  "entropy", "kl")


class MissingColumn(ValueError):
    """A run has no values in the asked column (its other errors are plain ValueErrors)."""


def run_points(source: str | Path, column: str, tracking_uri: str | None = None) -> list[tuple[float, float]]:
    """(step, value) of one metric of a run: from a stage's per-step CSV, or from MLflow's history of a
    run given as `mlflow:<run id>` (a grid experiment's run, whose CSV stays in DVC's cache)."""
    source = str(source)
    if source.startswith(MLFLOW_SOURCE):
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        client, run_id = MlflowClient(tracking_uri), source[len(MLFLOW_SOURCE):]
        try:
            client.get_run(run_id)  # an unknown run would otherwise read as a run without the metric
        except MlflowException as exc:  # most often a run id from another store: say which store
            raise ValueError(f"{source}: {exc.message} (tracking URI {client.tracking_uri})") from None
        history = client.get_metric_history(run_id, column)
        pts = sorted((float(m.step), float(m.value)) for m in history)
    else:
        pts = [(float(r["step"]), float(r[column])) for r in read_csv(source) if r.get(column) not in (None, "")]
    if not pts:
        raise MissingColumn(f"{source} has no values in column {column!r}")
    return pts


def window_means(points: list[tuple[float, float]], size: int) -> dict[tuple[int, int], float]:
    """Mean of (step, value) points over steps 1..size, size+1..2*size, ...: {(first, last step): mean}.
    Windows are cut by step number, so runs with the same size line up row by row; a run's last window
    ends at its last step."""
    groups: dict[int, list[tuple[float, float]]] = {}
    for step, value in points:
        groups.setdefault(int(step - 1) // size, []).append((step, value))
    return {(k * size + 1, int(max(s for s, _ in pts))): sum(v for _, v in pts) / len(pts)
            for k, pts in sorted(groups.items())}


def windows_table(runs: dict[str, str | Path], columns: list[str], size: int,
                  tracking_uri: str | None = None) -> str:
    """Markdown: a row per run and window of `size` steps, each column's mean there ("-" where the run
    did not log it, as a run without dynamic sampling has no `dynamic_sampling/*`)."""
    # run -> window's first step -> column -> (window's last logged step, mean); a window's row spans
    # the last step any of its columns logged (a sparse column does not split it)
    table: dict[str, dict[int, dict[str, tuple[int, float]]]] = {}
    logged: set[str] = set()
    for label, source in runs.items():
        rows = table.setdefault(label, {})
        for column in columns:
            try:
                means = window_means(run_points(source, column, tracking_uri), size)
            except MissingColumn:
                continue
            logged.add(column)
            for (first, last), mean in means.items():
                rows.setdefault(first, {})[column] = (last, mean)
        if not rows:  # a row of dashes would say nothing, and leaving the run out would hide it
            raise MissingColumn(f"run {label!r} ({source}) has no values in any of the columns {', '.join(map(repr, columns))}")
    if missing := [c for c in columns if c not in logged]:
        raise MissingColumn(f"no run has values in column(s) {', '.join(map(repr, missing))}")
    lines = ["| run | steps | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
    for label, rows in table.items():
        for first, values in sorted(rows.items()):
            last = max(end for end, _ in values.values())
            cells = [f"{values[c][1]:.3f}" if c in values else "-" for c in columns]
            lines.append(f"| {label} | {first}-{last} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_runs(runs: dict[str, str | Path], column: str, png_path: str | Path, title: str,
              window: int = 1, tracking_uri: str | None = None) -> Path:
    """One column of several runs on one axis (label -> per-step CSV or `mlflow:<run id>`), each with its
    running mean over `window` steps drawn over the raw points: a step's value rests on a couple of prompts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, source in runs.items():
        pts = run_points(source, column, tracking_uri)
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        line = ax.plot(xs, ys, marker="o", markersize=3, linewidth=0.6, alpha=0.45)[0]
        if window > 1:
            smooth = [sum(ys[max(0, i - window + 1):i + 1]) / len(ys[max(0, i - window + 1):i + 1]) for i in range(len(ys))]
            ax.plot(xs, smooth, color=line.get_color(), linewidth=2, label=f"{label} (mean of last {window})")
        else:
            line.set_label(label)
    ax.set_ylabel(column)
    return save_figure(fig, png_path, ax, "step", title)


def markdown_table(csv_path: str | Path, columns: list[str], max_rows: int = 40) -> str:
    """A per-step CSV as a markdown table (every k-th row when long), for Prefect artifacts and docs."""
    rows = read_csv(csv_path)
    columns = [c for c in columns if rows and c in rows[0] or any(c in r for r in rows)]
    if not rows:
        return "(no steps logged)"
    stride = max(1, -(-len(rows) // max_rows))
    picked = rows[::stride]
    if picked[-1] is not rows[-1]:
        picked.append(rows[-1])

    def cell(v: str | None) -> str:
        try:
            return f"{float(v):.4g}"
        except (TypeError, ValueError):
            return v or ""

    head = "| step | " + " | ".join(columns) + " |"
    sep = "|---" * (len(columns) + 1) + "|"
    body = ["| " + r["step"] + " | " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in picked]
    return "\n".join([head, sep, *body])
