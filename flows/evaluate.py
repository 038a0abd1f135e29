"""Flow `evaluate`: score every model of `evaluate.models` on BFCL and API-Bank, side by side.

DVC stage `evaluate` runs `python -m flows.evaluate`. The stage's own MLflow run is opened by the
domain code (`toolrl.evaluation.stage`), which `toolrl eval` runs as well; the task publishes the
accuracy table as a Prefect artifact.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import run_stage
from tasks.evaluate import evaluate_models
from toolrl.config import load_params

STAGE = "evaluate"


@flow(name=STAGE, log_prints=True)
def evaluate(params_path: str = "params.yaml", overrides: list[str] | None = None) -> dict[str, Any]:
    params = load_params(params_path, overrides)
    summary = evaluate_models(params)
    print(f"evaluation done: {summary['generated']} new completions, report in {summary['files']['markdown']}, "
          f"MLflow run {summary['run_id']}")
    return summary


if __name__ == "__main__":
    raise SystemExit(run_stage(STAGE, evaluate))
