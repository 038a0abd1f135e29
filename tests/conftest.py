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
