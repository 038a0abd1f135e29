"""Flow `curate`: upstream tool-use datasets -> data/curated (train/val/test, quarantine, data card).

DVC stage `curate` runs `python -m flows.curate`. The task logs the card to MLflow (the stage's run)
and publishes it as the `data-card` artifact; the domain code is `toolrl.data.curate`.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import run_stage
from tasks.curate import curate_dataset
from toolrl.config import load_params

STAGE = "curate"


@flow(name=STAGE, log_prints=True)
def curate(params_path: str = "params.yaml", overrides: list[str] | None = None) -> dict[str, Any]:
    params = load_params(params_path, overrides)
    summary = curate_dataset(params)
    print(f"curated into {summary['output_dir']}: {summary['totals']}")
    return summary


if __name__ == "__main__":
    raise SystemExit(run_stage(STAGE, curate))
