"""The pipeline as a user drives it from the Prefect UI, with real services.

A real Prefect server on a free loopback port, the deployments served by `python -m
flows.deployments` from a throw-away git + DVC copy of the project, a run triggered through the API
exactly as the UI's Run button does (create a flow run from the deployment), then: the run
completes, DVC recorded it as an experiment, and MLflow holds one parent run with the stage runs
nested under it. Every process started here is stopped in the fixtures' `finally`.
"""

from __future__ import annotations

import json
import shutil
import sys

import pytest
from orchestration_repo import (
    ROOT,
    base_env,
    free_port,
    make_repo,
    run,
    start,
    stop,
    wait_for_text,
)
from orchestration_repo import prefect_server as prefect_server_at

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    with prefect_server_at(home) as api_url:
        yield {"api_url": api_url, "home": home}


@pytest.fixture(scope="module")
def served_repo(prefect_server, tmp_path_factory):
    """A project copy whose deployments are served against the test's Prefect server."""
    env = base_env(prefect_server["home"])
    env["PREFECT_API_URL"] = prefect_server["api_url"]
    repo = make_repo(tmp_path_factory.mktemp("served") / "repo", env)
    log = repo.parent / "serve.log"
    proc = start([sys.executable, "-m", "flows.deployments"], repo, env, log)
    try:
        wait_for_text(log, "Your deployments are being served", proc)
        yield {"repo": repo, "env": env, "log": log}
    finally:
        stop(proc)


def test_ui_run_of_the_pipeline_completes_as_dvc_experiment_with_nested_mlflow_runs(prefect_server, served_repo):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    repo = served_repo["repo"]
    with temporary_settings({PREFECT_API_URL: prefect_server["api_url"]}), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("pipeline/smoke")
        assert deployment.parameters == {"profile": "smoke"}
        assert deployment.global_concurrency_limit.limit == 1  # one run at a time on the shared tree
        # What the UI's "Run > Custom run" button sends: a flow run of the deployment, with parameters.
        flow_run = client.create_flow_run_from_deployment(
            deployment.id, parameters={"profile": "smoke", "stages": ["prepare_model"], "experiment": "ui-run-1"})
        import time

        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            flow_run = client.read_flow_run(flow_run.id)
            if flow_run.state and flow_run.state.is_final():
                break
            time.sleep(2)
        assert flow_run.state is not None and flow_run.state.is_completed(), (
            f"state {flow_run.state}:\n{served_repo['log'].read_text()[-4000:]}")
        # The stage's own flow run reported to the same server, tagged with the pipeline run.
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

        tagged = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["pipeline:ui-run-1"])))
        assert [r.name for r in tagged] and all(r.state.is_completed() for r in tagged)

    # Every UI run is a DVC experiment one can list and apply.
    shown = run([sys.executable, "-m", "dvc", "exp", "show", "--json", "--no-fetch"], repo, served_repo["env"])
    names = {e.get("name") for row in json.loads(shown.stdout)
             for ex in row.get("experiments") or [] for e in ex.get("revs") or []}
    assert "ui-run-1" in names
    # Isolated (profile) runs leave the workspace's params.yaml untouched.
    assert run(["git", "status", "--porcelain", "params.yaml"], repo, served_repo["env"]).stdout == ""

    # MLflow: one parent run for the pipeline, the stage run nested under it.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlruns.db'}")
    exp = client.get_experiment_by_name("toolrl")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("toolrl.stage") == "pipeline"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.tags["dvc.exp_name"] == "ui-run-1"
    assert parent.data.tags["toolrl.profile"] == "smoke"
    assert parent.data.params["model.name"] == "tiny-random"  # every section's params on the parent
    assert "mlflow.source.git.commit" in parent.data.tags
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert [c.data.tags["toolrl.stage"] for c in children] == ["prepare_model"]
    child = children[0]
    assert child.data.tags["dvc.exp_name"] == "ui-run-1"  # set by `dvc exp run` for the stage process
    assert child.data.metrics["prepare_model/size_mb"] > 1


def test_make_services_starts_both_servers_on_loopback_and_stop_ends_them(tmp_path):
    """infra/services.sh (what `make services` / `make stop` run), in a copy so that ports, PIDs and
    stores are the test's own."""
    import os
    import subprocess
    import time

    import httpx

    (tmp_path / "infra").mkdir()
    shutil.copy(ROOT / "infra" / "services.sh", tmp_path / "infra" / "services.sh")
    prefect_port, mlflow_port = free_port(), free_port()
    env = base_env(tmp_path / "unused-prefect-home")
    env.update(PY=sys.executable, PREFECT_PORT=str(prefect_port), MLFLOW_PORT=str(mlflow_port))
    script = ["bash", str(tmp_path / "infra" / "services.sh")]
    try:
        started = subprocess.run([*script, "start"], env=env, capture_output=True, text=True, timeout=400)
        assert started.returncode == 0, started.stdout + started.stderr
        assert httpx.get(f"http://127.0.0.1:{prefect_port}/api/health", timeout=5).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{mlflow_port}/health", timeout=5).status_code == 200
        envs = subprocess.run([*script, "env"], env=env, capture_output=True, text=True).stdout.split()
        assert f"PREFECT_API_URL=http://127.0.0.1:{prefect_port}/api" in envs
        assert f"MLFLOW_TRACKING_URI=http://127.0.0.1:{mlflow_port}" in envs
        assert (tmp_path / "mlruns.db").exists()  # MLflow's backend is the project's embedded store
        pids = [int((tmp_path / ".services" / f"{n}.pid").read_text()) for n in ("prefect", "mlflow")]
    finally:
        stopped = subprocess.run([*script, "stop"], env=env, capture_output=True, text=True, timeout=120)
    assert "stopped prefect" in stopped.stdout and "stopped mlflow" in stopped.stdout
    time.sleep(1)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)  # the whole process group is gone (workers included)
