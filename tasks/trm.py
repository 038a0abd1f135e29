"""Tasks of the TRM stages (`toolrl.trm`): build the step data, train the TRM, run TRM-guided GRPO, and
their Prefect artifacts. Not retried: none of them fails transiently, and the training ones resume
from their last checkpoint when the stage is run again."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from toolrl.config import Params


# log_prints off: under Prefect's print capture, dill's stdout capture of `dis` output (how datasets
# fingerprints map functions) is logged instead of captured: noise, and wrong dataset fingerprints.
# The stage's own messages go to the run logger (`say`).
@task(name="trm-data", retries=0, log_prints=False)
def build_trm_data(params: Params) -> dict[str, Any]:
    from toolrl.trm.data import run_trm_data

    return run_trm_data(params, say=get_run_logger().info)


@task(name="trm-train", retries=0, log_prints=False)
def train_trm(params: Params, fresh: bool = False) -> dict[str, Any]:
    from toolrl.trm.trainer import run_trm

    return run_trm(params, fresh=fresh, say=get_run_logger().info).to_dict()


@task(name="publish-trm-data-card")
def publish_trm_data(params: Params) -> None:
    from pathlib import Path

    card = Path(params.trm.data.output_dir) / "card.md"
    create_markdown_artifact(key="trm-data-card", markdown=card.read_text(encoding="utf-8"),
                             description="TRM step records: provenance, sizes, label balance, hard negatives")


@task(name="publish-trm-report")
def publish_trm(result: dict[str, Any]) -> None:
    from toolrl.summary import trm_report

    create_markdown_artifact(key="trm-report", markdown=trm_report(result),
                             description="TRM: held-out classification metrics, rule agreement, calibration plot, MLflow run")
