"""Flow `trm_data`: policy rollouts (models/sft by default) on curated training prompts -> one labelled
step record per tool call, plus hard negatives -> data/trm/{train,val}.jsonl, card.md, stats.json.

DVC stage `trm_data` runs `python -m flows.trm_data`. Domain code: `toolrl.trm.data`.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import run_stage
from tasks.trm import build_trm_data, publish_trm_data
from toolrl.config import load_params

STAGE = "trm_data"


@flow(name=STAGE, log_prints=True)
def trm_data(params_path: str = "params.yaml", overrides: list[str] | None = None) -> dict[str, Any]:
    params = load_params(params_path, overrides)
    stats = build_trm_data(params)
    publish_trm_data(params)
    print(f"TRM data in {params.trm.data.output_dir}: train {stats['train/records']} records "
          f"({stats['train/positive_fraction']:.0%} positive), val {stats['val/records']}, "
          f"quarantined {stats['quarantined']}")
    return stats


if __name__ == "__main__":
    raise SystemExit(run_stage(STAGE, trm_data))
