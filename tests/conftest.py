"""Shared fixtures: a tiny random model folder, isolated MLflow stores, the project root."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """tiny-random (2 layers, width 64, SmolLM2 tokenizer) saved as a model folder, once per session."""
    from toolrl.config import ModelParams
    from toolrl.models import prepare_base_model

    out = tmp_path_factory.mktemp("models") / "base"
    return prepare_base_model(ModelParams(name="tiny-random", seed=0), out)


@pytest.fixture
def mlflow_uri(tmp_path) -> str:
    """A fresh embedded MLflow store for one test."""
    return f"sqlite:///{tmp_path / 'mlruns.db'}"


def pytest_sessionfinish(session, exitstatus):
    """Stop Prefect's temporary servers of this process while pytest's output is still open: left to
    Prefect's atexit hook, the stop is logged to a closed stream ("--- Logging error ---" after the
    summary)."""
    import sys

    if "prefect.server.api.server" in sys.modules:
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker
        from prefect.server.api.server import SubprocessASGIServer

        # first what the flows still have to send, as Prefect's own exit does, then the servers
        APILogWorker.drain_all(timeout=10)
        EventsWorker.drain_all(timeout=10)
        for server in list(SubprocessASGIServer._instances.values()):
            server.stop()
