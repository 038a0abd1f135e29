"""What a run reports when it ends: the pipeline's summary and the training stages' reports.

Plain data and markdown, no Prefect: `flows/pipeline.py` and the `publish-*` tasks only hand these
texts to Prefect artifacts (and `make run` prints `summary_text`). Nothing here decides what a stage
produces, so no DVC stage depends on this module (like `tracking.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolrl.dicts import numbers

UNCHANGED = "reused (already trained with these params)"


# ---------------------------------------------------------------- the pipeline


def pipeline_metrics(metric_trees: dict[str, dict], owners: dict[str, str]) -> dict[str, float]:
    """Every metrics file's numbers as `<stage>/<name>`: the stage is the file's owner in dvc.yaml
    (`orchestration.metrics_files`), else the file's stem."""
    metrics: dict[str, float] = {}
    for path, tree in metric_trees.items():
        metrics.update(numbers(tree, owners.get(path, Path(path).stem)))
    return metrics


def mlflow_url(uri: str, experiment_id: str, run_id: str) -> str:
    """Where to see a run: its page on an MLflow server, or how to browse an embedded store."""
    if uri.startswith("http"):
        return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    return f"{uri} (embedded store: `mlflow ui --backend-store-uri {uri}` to browse)"


def prefect_run_url(api_url: str | None, flow_run_id: str | None, ui_url: str | None = None) -> str | None:
    """A flow run's page in the Prefect UI (`ui_url`, else the API's address without `/api`); None
    without a server or a run."""
    if not api_url or not flow_run_id:
        return None
    ui = ui_url or api_url.removesuffix("/api")
    return f"{ui.rstrip('/')}/runs/flow-run/{flow_run_id}"


def pipeline_summary(*, experiment: str, rev: str | None, profile: str, overrides: list[str], temp: bool,
                     ran: list[str], skipped: list[str], restored: list[str], metrics: dict[str, float],
                     mlflow_run_id: str, mlflow_experiment_id: str, mlflow_url: str, prefect_url: str | None,
                     report: str | Path, root: str | Path = ".") -> dict[str, Any]:
    """The pipeline run's result: what DVC did with each stage, the final metrics, where to look.

    `report` (the evaluation's markdown) is named only when the run wrote it into the workspace; a
    temp experiment's is in DVC's cache until `dvc exp apply`."""
    where = (f"DVC temp workspace; bring it back with `dvc exp apply {experiment}`" if temp
             else "the workspace (data/, models/, reports/)")
    return {
        "experiment": experiment,
        "experiment_rev": rev,
        "profile": profile,
        "overrides": overrides,
        "where": where,
        "ran": ran,
        "skipped": skipped,
        "restored": restored,
        "metrics": metrics,
        "mlflow_run_id": mlflow_run_id,
        "mlflow_experiment_id": mlflow_experiment_id,
        "mlflow_url": mlflow_url,
        "prefect_url": prefect_url,
        "report": str(report) if not temp and (Path(root) / report).exists() else None,
    }


def summary_markdown(summary: dict[str, Any]) -> str:
    """The `pipeline-summary` artifact."""
    lines = [f"# Pipeline run `{summary['experiment']}`", ""]
    lines += [f"- profile: `{summary['profile']}`", f"- overrides: `{' '.join(summary['overrides']) or '-'}`"]
    lines += [f"- where: {summary['where']}"]
    for key in ("ran", "skipped", "restored"):
        lines.append(f"- stages {key}: {', '.join(summary[key]) or '-'}")
    lines += [f"- MLflow parent run: `{summary['mlflow_run_id']}` ({summary['mlflow_url']})"]
    if summary.get("report"):
        lines.append(f"- report: `{summary['report']}`")
    lines += ["", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" for k, v in sorted(summary["metrics"].items())]
    return "\n".join(lines) + "\n"


def metrics_table(metrics: dict[str, float]) -> list[dict[str, Any]]:
    """The `pipeline-metrics` table artifact's rows."""
    return [{"metric": k, "value": v} for k, v in sorted(metrics.items())]


def summary_text(summary: dict[str, Any]) -> str:
    """The end of `make run`: headline numbers, then where everything is (last, to be seen)."""
    headline = {k: v for k, v in summary["metrics"].items() if k.startswith("evaluate/") and k.endswith("/overall")}
    lines = ["", "== pipeline finished =="]
    lines += [f"  {key} = {value:.4g}" for key, value in sorted(headline.items())]
    if summary["metrics"]:
        lines.append(f"  ({len(summary['metrics'])} final metrics on the MLflow parent run; `dvc metrics show`)")
    lines.append(f"stages ran : {', '.join(summary['ran']) or '-'};  up to date: "
                 f"{', '.join(summary['skipped'] + summary['restored']) or '-'}")
    lines.append(f"experiment : {summary['experiment']}  ({summary['where']})")
    if summary.get("report"):
        lines.append(f"report     : {summary['report']}")
    lines.append(f"MLflow     : {summary['mlflow_url']}")
    if summary.get("prefect_url"):
        lines.append(f"Prefect    : {summary['prefect_url']}")
    return "\n".join(lines)


# ---------------------------------------------------------------- the training stages


def _header(result: dict[str, Any]) -> str:
    state = UNCHANGED if result["skipped"] else "trained"
    lines = [f"| | |\n|---|---|\n| state | {state} |", f"| output | `{result['output_dir']}` |",
             f"| global step | {result['global_step']} |", f"| MLflow run | `{result['run_id']}` |",
             f"| model | `{result['model_uri']}` |"]
    if result.get("resumed_from"):
        lines.append(f"| resumed from | `{result['resumed_from']}` |")
    for key in ("metrics_file", "plots_file", "plot_png"):
        if result.get(key):
            lines.append(f"| {key.replace('_', ' ')} | `{result[key]}` |")
    return "\n".join(lines)


def sft_report(result: dict[str, Any]) -> str:
    """The `sft-report` artifact: the run, the held-out format probe before and after, the loss curve."""
    from toolrl.training.publish import markdown_table

    metrics = result.get("metrics", {})
    probe = ""
    if "probe_after" in metrics:
        keys = ["well_formed_share", "parseable_call_share", "mean_calls", "name_match"]
        rows = [f"| {k} | {metrics.get('probe_before', {}).get(k, float('nan')):.3f} | "
                f"{metrics['probe_after'].get(k, float('nan')):.3f} |" for k in keys]
        probe = ("\n\n## Held-out probe (greedy, val prompts)\n\n| | before | after |\n|---|---|---|\n"
                 + "\n".join(rows))
    curve = markdown_table(result["plots_file"], ["loss", "learning_rate", "mean_token_accuracy"]) \
        if result.get("plots_file") else ""
    return f"# SFT\n\n{_header(result)}{probe}\n\n## Loss per step\n\n{curve}\n"


def grpo_report(result: dict[str, Any]) -> str:
    """The `grpo-reward-curves` artifact: the run, first vs last fifth of the steps, the reward curves."""
    from toolrl.training.grpo import reward_table

    metrics = result.get("metrics", {})
    gains = [f"| {k} | {v['first']:.3f} | {v['last']:.3f} | {v['gain']:+.3f} |"
             for k, v in metrics.items() if isinstance(v, dict) and "gain" in v]
    summary = ("\n\n## First vs last fifth of the steps\n\n| metric | first | last | gain |\n|---|---|---|---|\n"
               + "\n".join(gains)) if gains else ""
    table = reward_table(result["plots_file"]) if result.get("plots_file") else ""
    return (f"# GRPO (variant `{metrics.get('variant')}`, init `{metrics.get('init')}`)\n\n{_header(result)}"
            f"{summary}\n\n## Reward curves (mean over completions per step; plot: "
            f"`{result.get('plot_png')}`)\n\n{table}\n")


def trm_report(result: dict[str, Any]) -> str:
    """The `trm-report` artifact: held-out classification metrics, rule agreement, the run."""
    m = result.get("metrics", {})
    rows = []
    for part in ("val", "val_policy", "val_reference", "val_negative"):
        if part in m:
            v = m[part]
            rows.append(f"| {part} | {v.get('n', 0):.0f} | {v.get('accuracy', 0):.3f} | {v.get('precision', 0):.3f} | "
                        f"{v.get('recall', 0):.3f} | {v.get('f1', 0):.3f} | {v.get('roc_auc', 0):.3f} |")
    state = UNCHANGED if result.get("skipped") else "trained"
    return (f"# Tool-call Reward Model\n\n| | |\n|---|---|\n| state | {state} |\n"
            f"| output | `{result.get('output_dir')}` |\n| MLflow run | `{result.get('run_id')}` |\n"
            f"| registered | `{result.get('registered_model')}` v{result.get('version')} |\n"
            f"| steps | {m.get('global_step')} (early stop: {m.get('stopped_early')}) |\n"
            f"| rule agreement (held-out policy calls) | {m.get('rule_agreement', float('nan')):.3f} |\n"
            f"| calibration plot | `{result.get('plot_png')}` |\n\n"
            "## Held-out step records\n\n| records | n | accuracy | precision | recall | F1 | ROC-AUC |\n"
            "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
