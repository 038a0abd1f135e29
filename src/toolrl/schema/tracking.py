"""params.yaml `tracking`: where MLflow files runs (no stage depends on it)."""

from __future__ import annotations

from pydantic import Field

from toolrl.schema.base import Section


class TrackingParams(Section):
    tracking_uri: str | None = Field(default=None,
        description="None: MLFLOW_TRACKING_URI if set, else the embedded SQLite store below.")
    embedded_uri: str = "sqlite:///mlruns.db"
    artifact_root: str = "mlartifacts"
    experiment: str = "toolrl"
    register_models: bool = True
