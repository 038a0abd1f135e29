"""Task: prepare the base model folder. Retried: resolving a hub id downloads, which can fail and pass."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from toolrl.config import ModelParams


def _transient(task, task_run, state) -> bool:
    """Retry what can pass by itself: a hub download. A wrong name or a missing folder fails the same
    way again, so it is not retried (ModelError says "hub id" only when the hub was asked)."""
    from toolrl.models import ModelError

    exc = state.data
    if isinstance(exc, ModelError):
        return "hub id" in str(exc)
    return not isinstance(exc, ValueError | FileNotFoundError | TypeError)


@task(name="prepare-base-model", retries=2, retry_delay_seconds=10, retry_condition_fn=_transient)
def prepare_base_model(params: ModelParams) -> Path:
    from toolrl.models import prepare_base_model as prepare

    return prepare(params)
