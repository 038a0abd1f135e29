"""Tasks: the training stages (`toolrl.training.launch.execute`) and the Prefect artifacts of their results
(the reports themselves are `toolrl.summary`'s).

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


@task(name="publish-sft-report")
def publish_sft(result: dict[str, Any]) -> None:
    from toolrl.summary import sft_report

    create_markdown_artifact(key="sft-report", markdown=sft_report(result),
                             description="SFT run: model, MLflow run, held-out format probe, loss curve")


@task(name="publish-grpo-report")
def publish_grpo(result: dict[str, Any]) -> None:
    from toolrl.summary import grpo_report

    create_markdown_artifact(key="grpo-reward-curves", markdown=grpo_report(result),
                             description="GRPO run: reward per component per step, call statistics, model, MLflow run")
