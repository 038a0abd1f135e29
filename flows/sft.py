"""Flow `sft`: the SFT baseline, models/base + data/curated -> models/sft.

DVC stage `sft` runs `python -m flows.sft`. One task trains (in this process, or `accelerate launch`
when `sft.launch.accelerate_config` is set; resumes from the last checkpoint after a crash), one
publishes the `sft-report` artifact (held-out format probe, loss per step). Domain code:
`toolrl.training.sft`.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import run_stage
from tasks.train import publish_sft, train_stage
from toolrl.config import load_params

STAGE = "sft"


@flow(name=STAGE, log_prints=True)
def sft(params_path: str = "params.yaml", overrides: list[str] | None = None, fresh: bool = False) -> dict[str, Any]:
    load_params(params_path, overrides)  # fail on bad params before any task starts
    result = train_stage(STAGE, params_path, overrides or [], fresh)
    publish_sft(result)
    print(f"SFT model in {result['output_dir']} (step {result['global_step']}, MLflow run {result['run_id']})")
    return result


if __name__ == "__main__":
    raise SystemExit(run_stage(STAGE, sft))
