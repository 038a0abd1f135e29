"""Flow `grpo_trm`: GRPO with turn-level TRM advantages, from the same init and with the same budget as
`grpo` -> models/grpo_trm (registered `toolrl-grpo-trm`). `-S trm.grpo.advantage=pooled` runs the
naive ablation.

DVC stage `grpo_trm` runs `python -m flows.grpo_trm`. Domain code: `toolrl.trm.grpo`; the reward
curves artifact is the grpo stage's.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import run_stage
from tasks.train import publish_grpo, train_stage
from toolrl.config import load_params

STAGE = "grpo_trm"


@flow(name=STAGE, log_prints=True)
def grpo_trm(params_path: str = "params.yaml", overrides: list[str] | None = None,
             fresh: bool = False) -> dict[str, Any]:
    params = load_params(params_path, overrides)
    # in this process, or as `accelerate launch` processes: the grpo section's launch settings
    result = train_stage(STAGE, params_path, overrides or [], fresh)
    publish_grpo(result)
    calls = result.get("metrics", {}).get("trm/mean_calls", {})
    print(f"TRM-guided GRPO ({params.trm.grpo.advantage}) in {result['output_dir']} (MLflow run {result['run_id']}); "
          f"calls per completion {calls.get('first', float('nan')):.2f} -> {calls.get('last', float('nan')):.2f}")
    return result


if __name__ == "__main__":
    raise SystemExit(run_stage(STAGE, grpo_trm))
