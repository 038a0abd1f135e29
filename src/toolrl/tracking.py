"""MLflow conventions shared by every stage.

- Where runs go: `tracking.tracking_uri` in params, else `MLFLOW_TRACKING_URI`, else an embedded
  SQLite store in the project (`sqlite:///mlruns.db`) with artifacts under `mlartifacts/`.
- One experiment per project, tagged as a model-training one (`mlflow.experimentKind`); one parent
  run per pipeline run and a nested run per stage. The
  pipeline flow opens the parent and hands its id to the stage processes it starts through
  `TOOLRL_PARENT_RUN_ID` (plumbing between processes, like MLflow's own `MLFLOW_RUN_ID`; it changes
  no behaviour of a stage, only where its run is filed).
- Metrics are named `<stage>/<metric>`; tags carry the git commit and the DVC experiment.
- A stage that is restarted after a crash reopens its own run (the id is kept in its output folder),
  so a resumed training continues the same run.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from toolrl.config import Params, TrackingParams
from toolrl.dicts import flatten

PARENT_ENV = "TOOLRL_PARENT_RUN_ID"
RUN_ID_FILE = "mlflow_run_id"
# MLflow 3's experiment type, read by its UI to show a model-training experiment (runs, metrics,
# models) rather than a GenAI one (traces, prompts). MLflow has no Python constant for it: the tag
# and its values are the UI's `ExperimentKind` enum (mlflow/server/js, MLflow 3.17).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def tracking_uri(tracking: TrackingParams) -> str:
    if tracking.tracking_uri:
        return tracking.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return tracking.embedded_uri


def configure(tracking: TrackingParams) -> str:
    """Point MLflow at the store and experiment of these params; returns the experiment id."""
    import mlflow

    uri = tracking_uri(tracking)
    mlflow.set_tracking_uri(uri)
    exp = mlflow.get_experiment_by_name(tracking.experiment)
    if exp is None:
        # With the embedded store, keep artifacts in the project rather than MLflow's default ./mlruns.
        location = None
        if uri.startswith("sqlite:"):
            location = Path(tracking.artifact_root).resolve().as_uri()
        exp_id = mlflow.create_experiment(tracking.experiment, artifact_location=location,
                                          tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    else:
        exp_id = exp.experiment_id
        if EXPERIMENT_KIND_TAG not in exp.tags:  # made before the tag, or by someone else: a kind set is kept
            mlflow.MlflowClient().set_experiment_tag(exp_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def run_tags(stage: str) -> dict[str, str]:
    tags = {"toolrl.stage": stage}
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    # Set by `dvc exp run` in the environment of the stage commands it runs.
    for env, tag in (("DVC_EXP_NAME", "dvc.exp_name"), ("DVC_EXP_BASELINE_REV", "dvc.baseline_rev")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    return tags


def flat_params(section: Any, prefix: str) -> dict[str, Any]:
    """A pydantic section flattened to `prefix.key` -> value, as MLflow params (text, cut at 500)."""
    data = section.model_dump(mode="json") if hasattr(section, "model_dump") else dict(section)
    return {key: _param_text(value) for key, value in flatten(data, prefix, sep=".").items()}


def _param_text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 500 else text[:497] + "..."


@contextmanager
def stage_run(params: Params, stage: str, resume_dir: str | Path | None = None,
              log_params: Any = None, started: float | None = None) -> Iterator[Any]:
    """An MLflow run for one stage, nested under the pipeline's parent run when there is one.

    `resume_dir`: a folder that outlives a crash (the stage's checkpoint folder); the run id is stored
    there and reused, so a restarted stage logs into the same run. `log_params`: the params section
    to record (defaults to none). `started`: the stage's `time.perf_counter()` at its start, for a
    stage that does its work before it opens the run (default: when the run opens).
    """
    import mlflow

    configure(params.tracking)
    run_id = None
    id_file = Path(resume_dir) / RUN_ID_FILE if resume_dir else None
    if id_file and id_file.exists():
        run_id = id_file.read_text().strip() or None
    parent = os.environ.get(PARENT_ENV)
    tags = run_tags(stage)
    if parent:
        tags["mlflow.parentRunId"] = parent
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else stage, tags=tags) as run:
        if id_file:
            id_file.parent.mkdir(parents=True, exist_ok=True)
            id_file.write_text(run.info.run_id)
        if log_params is not None and run_id is None:
            mlflow.log_params(flat_params(log_params, stage))
        from toolrl.hardware import bf16_supported

        # What `bf16: auto` / `dtype: auto` resolved to on this machine (params record only `auto`).
        mlflow.set_tag("system.fast_bf16", str(bf16_supported()).lower())
        started = time.perf_counter() if started is None else started
        yield run
        # What the stage cost this process (and children it waited for, e.g. `accelerate launch`):
        # docs/BENCHMARKS.md reads these off the runs of a pipeline.
        mlflow.log_metrics({"system/stage_seconds": time.perf_counter() - started,
                            "system/peak_rss_gb": peak_rss_gb()})


def peak_rss_gb() -> float:
    """Peak resident memory of this process or of its largest waited-for child, in GB (Linux: KB)."""
    import resource

    kb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return kb / 2**20


def log_metrics(stage: str, metrics: dict[str, float], step: int | None = None) -> None:
    """Log numeric metrics as `<stage>/<name>`; non-numeric values are skipped on purpose."""
    import mlflow

    clean = {f"{stage}/{k}": float(v) for k, v in metrics.items() if isinstance(v, int | float)}
    if clean:
        mlflow.log_metrics(clean, step=step)
