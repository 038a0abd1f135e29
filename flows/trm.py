"""Flow `trm`: train the Tool-call Reward Model on data/trm -> models/trm (registered `toolrl-trm`),
reports/metrics/trm.json and the calibration plot.

DVC stage `trm` runs `python -m flows.trm`. Domain code: `toolrl.trm.trainer`.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import run_stage
from tasks.trm import publish_trm, train_trm
from toolrl.config import load_params

STAGE = "trm"


@flow(name=STAGE, log_prints=True)
def trm(params_path: str = "params.yaml", overrides: list[str] | None = None, fresh: bool = False) -> dict[str, Any]:
    params = load_params(params_path, overrides)
    result = train_trm(params, fresh)
    publish_trm(result)
    val = result.get("metrics", {}).get("val", {})
    print(f"TRM in {result['output_dir']} (MLflow run {result['run_id']}): val ROC-AUC {val.get('roc_auc', 0):.3f}, "
          f"F1 {val.get('f1', 0):.3f}")
    return result


if __name__ == "__main__":
    raise SystemExit(run_stage(STAGE, trm))
