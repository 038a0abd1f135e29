"""Shared fixtures: a tiny random model folder, isolated MLflow stores, the project root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs pytest-xdist workers side by side: each gets its share of the cores (inherited by
    # the stage processes it starts), so torch's one thread per core in every worker does not
    # oversubscribe the machine. Set before any test imports torch.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))


# The longest file (the smoke DAG, ~7 min) goes first: pytest-xdist workers then run it beside the
# rest of the suite instead of after it.
LONGEST_FIRST = ("test_orchestration_dvc.py",)


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: item.path.name not in LONGEST_FIRST)  # stable: the rest keep their order


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
