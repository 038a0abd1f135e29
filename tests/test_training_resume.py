"""A training process killed mid-run resumes from its last checkpoint, into the same MLflow run, and
reaches the same final step: a real subprocess, SIGKILLed once its first checkpoint is on disk. Its
output folder and per-step CSV are then deleted, as `dvc exp run`'s forced checkout deletes a crashed
stage's outs: the resume must not need them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from training_fixtures import tiny_params

from toolrl.training.checkpoints import TRAINER_STATE, checkpoint_folder, checkpoints, read_done
from toolrl.training.publish import read_csv

pytestmark = pytest.mark.slow
MAX_STEPS = 6


def _wait_for_checkpoint(out: Path, proc: subprocess.Popen, log: Path, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any((c / TRAINER_STATE).exists() for c in checkpoints(checkpoint_folder(out))):
            return
        if proc.poll() is not None:
            pytest.fail(f"training exited ({proc.returncode}) before its first checkpoint:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail("no checkpoint within the timeout")


def test_killed_grpo_run_resumes_into_the_same_mlflow_run(tmp_path, tiny_model_dir, mlflow_uri):
    from mlflow import MlflowClient

    params = tiny_params(tmp_path, tiny_model_dir, mlflow_uri,
                         [f"grpo.max_steps={MAX_STEPS}", "grpo.save_steps=2", "grpo.save_total_limit=3"])
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json")))
    out = Path(params.grpo.output_dir)
    cmd = [sys.executable, "-m", "toolrl.training.launch", "grpo", "--params", str(params_file)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("TOOLRL_PARENT_RUN_ID", None)

    log = tmp_path / "first.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=fh, stderr=subprocess.STDOUT)
        _wait_for_checkpoint(out, proc, log)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    run_id = (checkpoint_folder(out) / "mlflow_run_id").read_text().strip()
    client = MlflowClient(tracking_uri=mlflow_uri)
    assert client.get_run(run_id).info.status == "RUNNING"  # killed: nobody ended it
    assert not (out / "train_done.json").exists()
    killed_at = max(int(r["step"]) for r in read_csv(params.grpo.plots_file))
    assert killed_at < MAX_STEPS
    shutil.rmtree(out)  # what DVC's forced checkout does to outs with no hash in dvc.lock
    Path(params.grpo.plots_file).unlink()

    second = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming from" in second.stdout
    # TRL's MLflow callback logs its arguments again into the reopened run: they must not differ.
    assert "Changing param values is not allowed" not in second.stdout + second.stderr
    done = read_done(out)
    assert done["run_id"] == run_id and done["global_step"] == MAX_STEPS
    assert done["resumed_from"] and int(done["resumed_from"].rsplit("-", 1)[1]) < MAX_STEPS

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert [r.info.run_id for r in client.search_runs([run.info.experiment_id])] == [run_id]
    steps = [m.step for m in client.get_metric_history(run_id, "grpo/reward")]
    assert max(steps) == MAX_STEPS and set(steps) == set(range(1, MAX_STEPS + 1))
    # The per-step CSV holds each step once: the steps up to the checkpoint rebuilt from the trainer's
    # log history, the rest written by the resumed run.
    assert [int(r["step"]) for r in read_csv(params.grpo.plots_file)] == list(range(1, MAX_STEPS + 1))
