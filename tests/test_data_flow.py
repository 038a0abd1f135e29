"""The `curate` Prefect flow on a temporary Prefect server: it runs the stage through its task and
publishes the data card as the `data-card` markdown artifact."""

from __future__ import annotations

import pytest
import yaml
from data_fixtures import write_all


@pytest.mark.slow
def test_curate_flow_publishes_the_data_card(tmp_path, mlflow_uri, project_root, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.testing.utilities import prefect_test_harness

    monkeypatch.syspath_prepend(str(project_root))
    from flows.curate import curate

    files = write_all(tmp_path / "in")
    params = {
        "data": {"sources": [{"name": "xlam", "location": str(files["xlam"])},
                             {"name": "hammer", "location": str(files["hammer"])}],
                 "output_dir": str(tmp_path / "out")},
        "tracking": {"tracking_uri": mlflow_uri, "artifact_root": str(tmp_path / "art")},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with prefect_test_harness(server_startup_timeout=120):  # 30 s (the default) is too short on 2 loaded cores
        summary = curate(params_path=str(tmp_path / "params.yaml"), overrides=["data.seed=3"])
        with get_client(sync_client=True) as client:
            cards = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["data-card"])))
    assert summary["totals"]["read"] == 12 and summary["mlflow_run_id"]
    assert (tmp_path / "out" / "card.md").exists()
    assert len(cards) == 1 and cards[0].type == "markdown"
    assert "# Data card" in cards[0].data and "## Quarantine reasons" in cards[0].data
    # the PNGs cannot show in the UI: the artifact says where they are instead
    assert "prompt_tokens.png` (also in the MLflow run" in cards[0].data
