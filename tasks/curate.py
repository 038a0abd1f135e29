"""Task: run the curate stage (`toolrl.data.curate.curate`) and publish its data card as a Prefect
markdown artifact. Retried only when a download failed (a hub dataset or URL can pass next time);
bad records never fail the task, they are quarantined."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact

from toolrl.config import Params


def _transient(task, task_run, state) -> bool:
    message = str(state.data)
    return "cannot download" in message or "cannot load hub dataset" in message


@task(name="curate-dataset", retries=2, retry_delay_seconds=10, retry_condition_fn=_transient)
def curate_dataset(params: Params) -> dict[str, Any]:
    from toolrl.data.card import for_artifact
    from toolrl.data.curate import curate

    result = curate(params)
    create_markdown_artifact(
        key="data-card",
        markdown=for_artifact(result.card_markdown, result.output_dir),
        description="Curated dataset: counts per source, calls and split; quarantine reasons",
    )
    return {"output_dir": str(result.output_dir), "mlflow_run_id": result.mlflow_run_id, **result.stats}
