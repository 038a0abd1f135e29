"""What the pipeline flow needs from the domain side: the DAG's shape, the parent MLflow run, results.

No Prefect and no DVC process here: this module reads dvc.yaml as YAML and talks to MLflow only.
The pipeline flow (flows/pipeline.py) runs DVC and passes the parent run's id to the stage
processes through `TOOLRL_PARENT_RUN_ID`, so each stage's `tracking.stage_run` nests under it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from toolrl.config import Params
from toolrl.tracking import PARENT_ENV, configure, flat_params, run_tags, tracking_uri

PIPELINE = "pipeline"


def dag_stages(dvc_yaml: str | Path = "dvc.yaml") -> dict[str, dict[str, Any]]:
    """Stage name -> its dvc.yaml entry, in file order (the pipeline's order)."""
    path = Path(dvc_yaml)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run from the project root")
    data = yaml.safe_load(path.read_text()) or {}
    return dict(data.get("stages") or {})


def metrics_files(dvc_yaml: str | Path = "dvc.yaml") -> dict[str, str]:
    """Metrics file -> the stage that writes it (from each stage's `metrics:` list)."""
    out: dict[str, str] = {}
    for stage, entry in dag_stages(dvc_yaml).items():
        for item in entry.get("metrics") or []:
            path = item if isinstance(item, str) else next(iter(item))
            out[path] = stage
    return out


def experiment_name(label: str) -> str:
    """A DVC experiment name (a git ref component) from a free label such as a flow run's name."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", label).strip("-")
    return name[:60] or "run"


def stage_env(parent_run_id: str, params: Params) -> dict[str, str]:
    """Environment for the stage processes: where to file their runs.

    The MLflow store is made absolute so that stages running in a DVC temp workspace
    (`dvc exp run --temp`) write into the project's store, not a copy that is thrown away.
    """
    uri = tracking_uri(params.tracking)
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(Path(uri.removeprefix("sqlite:///")).resolve())
    return {PARENT_ENV: parent_run_id, "MLFLOW_TRACKING_URI": uri}


@contextmanager
def parent_run(params: Params, exp_name: str, profile: str, overrides: list[str]) -> Iterator[Any]:
    """The pipeline's parent MLflow run: every section's params, the profile and the DVC experiment.

    Logging all params here (stages log only their own section) is what makes two pipeline runs
    comparable side by side in the MLflow UI.
    """
    import mlflow

    configure(params.tracking)
    tags = run_tags(PIPELINE)
    tags["dvc.exp_name"] = exp_name
    tags["toolrl.profile"] = profile
    # A pipeline started inside another pipeline's stage would otherwise nest under it.
    os.environ.pop(PARENT_ENV, None)
    with mlflow.start_run(run_name=f"{PIPELINE} {exp_name}", tags=tags) as run:
        logged: dict[str, Any] = {"pipeline.profile": profile, "pipeline.overrides": " ".join(overrides) or "-"}
        for section in Params.model_fields:
            logged.update(flat_params(getattr(params, section), section))
        mlflow.log_params(logged)
        yield run
