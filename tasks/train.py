"""Tasks: the training stages (`toolrl.training.launch.execute`) and the Prefect artifacts of their results.

Never retried: a failed training is not transient, and a rerun resumes from the last checkpoint
anyway (the stage's output folder keeps them), so retrying would only hide the failure.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact


# log_prints off: under Prefect's print capture, dill's stdout capture of `dis` output (how datasets
# fingerprints map functions) is logged instead of captured: noise, and wrong dataset fingerprints.
# The stage's own messages go to the run logger (`say`).
@task(name="train-stage", retries=0, log_prints=False)
def train_stage(stage: str, params_path: str, overrides: list[str], fresh: bool = False) -> dict[str, Any]:
    from toolrl.config import load_params
    from toolrl.training.launch import execute

    params = load_params(params_path, overrides)
    return execute(stage, params, params_path, overrides, fresh, say=get_run_logger().info).to_dict()


def _header(result: dict[str, Any]) -> str:
    state = "reused (already trained with these params)" if result["skipped"] else "trained"
    lines = [f"| | |\n|---|---|\n| state | {state} |", f"| output | `{result['output_dir']}` |",
             f"| global step | {result['global_step']} |", f"| MLflow run | `{result['run_id']}` |",
             f"| model | `{result['model_uri']}` |"]
    if result.get("resumed_from"):
        lines.append(f"| resumed from | `{result['resumed_from']}` |")
    for key in ("metrics_file", "plots_file", "plot_png"):
        if result.get(key):
            lines.append(f"| {key.replace('_', ' ')} | `{result[key]}` |")
    return "\n".join(lines)


@task(name="publish-sft-report")
def publish_sft(result: dict[str, Any]) -> None:
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
    create_markdown_artifact(
        key="sft-report",
        markdown=f"# SFT\n\n{_header(result)}{probe}\n\n## Loss per step\n\n{curve}\n",
        description="SFT run: model, MLflow run, held-out format probe, loss curve",
    )


@task(name="publish-grpo-report")
def publish_grpo(result: dict[str, Any]) -> None:
    from toolrl.training.grpo import reward_table

    metrics = result.get("metrics", {})
    gains = [f"| {k} | {v['first']:.3f} | {v['last']:.3f} | {v['gain']:+.3f} |"
             for k, v in metrics.items() if isinstance(v, dict) and "gain" in v]
    summary = ("\n\n## First vs last fifth of the steps\n\n| metric | first | last | gain |\n|---|---|---|---|\n"
               + "\n".join(gains)) if gains else ""
    table = reward_table(result["plots_file"]) if result.get("plots_file") else ""
    create_markdown_artifact(
        key="grpo-reward-curves",
        markdown=(f"# GRPO (variant `{metrics.get('variant')}`, init `{metrics.get('init')}`)\n\n{_header(result)}"
                  f"{summary}\n\n## Reward curves (mean over completions per step; plot: "
                  f"`{result.get('plot_png')}`)\n\n{table}\n"),
        description="GRPO run: reward per component per step, call statistics, model, MLflow run",
    )
