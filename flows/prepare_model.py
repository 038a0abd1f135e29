"""Flow `prepare_model`: resolve the `model` section and save the base model to models/base.

DVC stage `prepare_model` runs `python -m flows.prepare_model`. The embedded SmolLM2 GGUF is
de-quantised once into a safetensors folder that every later stage loads quickly.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.common import run_stage
from tasks.models import prepare_base_model
from toolrl.config import load_params
from toolrl.tracking import log_metrics, stage_run

STAGE = "prepare_model"


def _folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


@flow(name=STAGE, log_prints=True)
def prepare_model(params_path: str = "params.yaml", overrides: list[str] | None = None) -> str:
    params = load_params(params_path, overrides)
    with stage_run(params, STAGE, log_params=params.model) as run:
        out = prepare_base_model(params.model)
        size = _folder_mb(out)
        log_metrics(STAGE, {"size_mb": size})
    create_markdown_artifact(
        key="base-model",
        markdown=(
            f"# Base model\n\n| | |\n|---|---|\n| reference | `{params.model.name}` |\n"
            f"| folder | `{out}` |\n| size | {size:.1f} MB |\n| dtype | {params.model.dtype} |\n"
            f"| MLflow run | `{run.info.run_id}` |\n"
        ),
        description="The base model every stage starts from",
    )
    print(f"base model ready in {out} ({size:.1f} MB)")
    return str(out)


if __name__ == "__main__":
    raise SystemExit(run_stage(STAGE, prepare_model))
