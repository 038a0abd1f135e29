"""Flow `grpo`: GRPO with the ToolRL reward, models/sft (or models/base) + data/curated -> models/grpo.

DVC stage `grpo` runs `python -m flows.grpo`. One task trains (in this process, or `accelerate launch`
on GPUs, with vLLM when `grpo.vllm.enabled`; resumes from the last checkpoint after a crash), one
publishes the reward curves as the `grpo-reward-curves` artifact (a markdown table per step + the
PNG's path). Domain code: `toolrl.training.grpo`.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import run_stage
from tasks.train import publish_grpo, train_stage
from toolrl.config import load_params

STAGE = "grpo"


@flow(name=STAGE, log_prints=True)
def grpo(params_path: str = "params.yaml", overrides: list[str] | None = None, fresh: bool = False) -> dict[str, Any]:
    load_params(params_path, overrides)  # fail on bad params before any task starts
    result = train_stage(STAGE, params_path, overrides or [], fresh)
    publish_grpo(result)
    reward = result.get("metrics", {}).get("reward", {})
    print(f"GRPO model in {result['output_dir']} (step {result['global_step']}, MLflow run {result['run_id']}); "
          f"reward {reward.get('first', float('nan')):.3f} -> {reward.get('last', float('nan')):.3f}")
    return result


if __name__ == "__main__":
    raise SystemExit(run_stage(STAGE, grpo))
