"""The `evaluate` Prefect flow publishes the accuracy table as a markdown artifact."""

from __future__ import annotations

import json
import shutil

import pytest


@pytest.mark.slow
def test_evaluate_flow_publishes_the_table(project_root, tiny_model_dir, tmp_path, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.testing.utilities import prefect_test_harness

    monkeypatch.syspath_prepend(str(project_root))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("TOOLRL_PARENT_RUN_ID", raising=False)
    # two copies of the model as "seeds" of one method, the model itself as a second method held fixed (a copy
    # has the same content hash, so its completions come from the cache)
    seeds = [str(shutil.copytree(tiny_model_dir, tmp_path / f"seed{i}")) for i in range(2)]
    (tmp_path / "params.yaml").write_text(json.dumps({
        "tracking": {"tracking_uri": f"sqlite:///{tmp_path / 'mlruns.db'}"},
        "evaluate": {"models": [str(tiny_model_dir), *seeds], "benchmarks": ["bfcl"],
                     "bfcl_categories": ["simple_python"], "limit": 2, "max_new_tokens": 8,
                     "arms": {"fixed": [str(tiny_model_dir)], "method": seeds}},
    }))
    from flows.evaluate import evaluate

    with prefect_test_harness(server_startup_timeout=120):
        summary = evaluate(params_path="params.yaml")
        with get_client(sync_client=True) as client:
            artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["evaluation"])))
    assert summary["generated"] == 2 and (tmp_path / "reports" / "eval.md").exists()
    assert artifacts and "bfcl/simple_python (n=2)" in artifacts[0].data
    assert summary["run_id"] in artifacts[0].data
    assert "## Methods across training seeds" in artifacts[0].data and "| method | bfcl | 2 |" in artifacts[0].data
    assert (tmp_path / "reports" / "eval_arms.csv").exists()
