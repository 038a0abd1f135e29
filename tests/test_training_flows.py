"""The `sft` and `grpo` Prefect flows: SFT, then GRPO warm from it; each publishes its report artifact."""

from __future__ import annotations

import pytest
import yaml
from training_fixtures import tiny_params

pytestmark = pytest.mark.slow


def test_sft_then_warm_grpo_flows_publish_their_reports(project_root, tiny_model_dir, tmp_path, monkeypatch, mlflow_uri):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.testing.utilities import prefect_test_harness

    monkeypatch.syspath_prepend(str(project_root))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("TOOLRL_PARENT_RUN_ID", raising=False)
    params = tiny_params(tmp_path, tiny_model_dir, mlflow_uri, ["grpo.init=sft", "sft.max_steps=2", "grpo.max_steps=2"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json")))
    from flows.grpo import grpo
    from flows.sft import sft

    def artifact(client, key):
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
        assert found, key
        return found[0].data

    with prefect_test_harness(server_startup_timeout=180):
        sft_result = sft(params_path="params.yaml")
        grpo_result = grpo(params_path="params.yaml")
        with get_client(sync_client=True) as client:
            sft_md = artifact(client, "sft-report")
            grpo_md = artifact(client, "grpo-reward-curves")
    assert sft_result["global_step"] == 2 and grpo_result["global_step"] == 2
    assert sft_result["run_id"] in sft_md and "Held-out probe" in sft_md and "| step | loss |" in sft_md
    assert grpo_result["run_id"] in grpo_md and "init `sft`" in grpo_md
    assert "| step | reward | reward_std | rewards/correctness_reward/mean |" in grpo_md
    assert grpo_result["plot_png"] in grpo_md
