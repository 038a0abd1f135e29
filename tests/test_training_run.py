"""Real (tiny) training runs: SFT and GRPO on tiny-random, tracked in a fresh MLflow store each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from training_fixtures import record, tiny_params

from toolrl.training import checkpoints, sft
from toolrl.training.data import load_view
from toolrl.training.publish import read_csv

pytestmark = pytest.mark.slow


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _runs(uri: str) -> list:
    client = _client(uri)
    exp = client.get_experiment_by_name("toolrl")
    return client.search_runs([exp.experiment_id]) if exp else []


def _weights(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten().float() for p in model.parameters()])


def test_completion_only_loss_covers_exactly_the_assistant_turn(tmp_path, tiny_model_dir, mlflow_uri):
    params = tiny_params(tmp_path, tiny_model_dir, mlflow_uri)
    state = checkpoints.OutputState(tmp_path / "out", None, False)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    train = load_view(params.data.output_dir, "train", "sft", limit=2)
    trainer = sft.build_trainer(params, state, tiny_model_dir, train, tokenizer, [])
    row = trainer.train_dataset[0]
    learned = [t for t in row["labels"] if t != -100]
    # The loss sees the target turn and the end-of-turn token that teaches the model to stop; no prompt.
    assert tokenizer.decode(learned).strip() == record(0)["completion"][0]["content"] + "<|im_end|>"
    assert len(learned) < len(row["input_ids"]) / 4


def test_sft_trains_tracks_registers_and_is_then_reused(tmp_path, tiny_model_dir, mlflow_uri):
    from mlflow.pyfunc import get_model_dependencies
    from transformers import AutoModelForCausalLM, AutoTokenizer

    params = tiny_params(tmp_path, tiny_model_dir, mlflow_uri)
    result = sft.run_sft(params, say=lambda _: None)
    out = Path(result.output_dir)
    assert result.global_step == 3 and not result.skipped and result.resumed_from is None

    # A plain transformers folder with its tokenizer, trained away from the base weights.
    model = AutoModelForCausalLM.from_pretrained(str(out))
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    assert AutoTokenizer.from_pretrained(str(out)).eos_token == "<|im_end|>"
    assert not torch.equal(_weights(model), _weights(base))
    assert not checkpoints.checkpoint_folder(out).exists() and not (out / "adapter_config.json").exists()

    # One MLflow run holding our params and metrics and TRL's own.
    runs = _runs(mlflow_uri)
    assert [r.info.run_id for r in runs] == [result.run_id] and runs[0].info.status == "FINISHED"
    client = _client(mlflow_uri)
    assert [m.step for m in client.get_metric_history(result.run_id, "sft/loss")] == [1, 2, 3]
    assert client.get_metric_history(result.run_id, "loss")  # TRL's MLflow callback, same run
    data = runs[0].data
    assert data.params["sft.learning_rate"] == str(params.sft.learning_rate) and "max_steps" in data.params
    for when in ("before", "after"):
        assert f"sft/probe_{when}/well_formed_share" in data.metrics
    # What the stage cost: seconds inside the run and the process's peak memory (a real figure).
    assert data.metrics["system/stage_seconds"] > 0 and 0.1 < data.metrics["system/peak_rss_gb"] < 24
    assert data.tags["system.fast_bf16"] in ("true", "false")
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "samples")}
    assert {"samples/sft_probe_before.json", "samples/sft_probe_after.json"} <= artifacts

    # Registered with an alias, pip requirements pinned to the training stack.
    version = client.get_model_version_by_alias("toolrl-sft", "candidate")
    assert version.run_id == result.run_id
    requirements = Path(get_model_dependencies(result.model_uri)).read_text()
    assert f"transformers=={__import__('transformers').__version__}" in requirements.splitlines()
    assert "torch==" + __import__("torch").__version__.split("+")[0] in requirements.splitlines()

    # Files for DVC: per-step CSV and the stage's metrics.
    assert [int(r["step"]) for r in read_csv(params.sft.plots_file)] == [1, 2, 3]
    metrics = json.loads(Path(params.sft.metrics_file).read_text())
    assert metrics["global_step"] == 3 and set(metrics["probe_after"]) >= {"well_formed_share", "name_match"}
    assert Path(result.plot_png).exists()

    # Same params again: nothing retrained, no new run.
    again = sft.run_sft(params, say=lambda _: None)
    assert again.skipped and again.run_id == result.run_id and len(_runs(mlflow_uri)) == 1


def test_sft_with_lora_writes_a_merged_plain_model(tmp_path, tiny_model_dir, mlflow_uri):
    from transformers import AutoModelForCausalLM

    params = tiny_params(tmp_path, tiny_model_dir, mlflow_uri, [
        "sft.lora.enabled=true", "sft.max_steps=2", "sft.learning_rate=1.0e-2", "sft.probe_prompts=0",
        "tracking.register_models=false"])
    result = sft.run_sft(params, say=lambda _: None)
    out = Path(result.output_dir)
    assert not (out / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(str(out))
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    assert set(model.state_dict()) == set(base.state_dict())  # no lora_A / lora_B left
    assert not torch.equal(_weights(model), _weights(base))


def test_grpo_runs_on_the_reward_library_and_reports_each_component(tmp_path, tiny_model_dir, mlflow_uri):
    from mlflow.artifacts import load_dict

    from toolrl.training.grpo import run_grpo

    params = tiny_params(tmp_path, tiny_model_dir, mlflow_uri)
    result = run_grpo(params, say=lambda _: None)
    assert result.global_step == 3 and Path(result.output_dir, "config.json").exists()

    rows = read_csv(params.grpo.plots_file)
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    for col in ("reward", "reward_std", "rewards/format_reward/mean", "rewards/correctness_reward/std",
                "completions/mean_length", "tool_calls/parseable_call_share", "tool_calls/mean_calls", "step_time"):
        assert col in rows[0], col
    assert all(float(r["step_time"]) > 0 for r in rows)  # windows of it give a run's cost by phase
    for r in rows:  # abstaining by prompt kind: blank in a step without prompts of that kind
        assert 0.0 <= float(r["tool_calls/no_call_prompt_share"]) <= 1.0
        for col in ("tool_calls/abstain_on_call", "tool_calls/abstain_on_no_call"):
            assert r[col] == "" or 0.0 <= float(r[col]) <= 1.0, (col, r[col])

    client = _client(mlflow_uri)
    assert [m.step for m in client.get_metric_history(result.run_id, "grpo/rewards/format_reward/mean")] == [1, 2, 3]
    assert client.get_metric_history(result.run_id, "reward")  # TRL's own metric, same run
    # Sample tables at the first step, every sample_every (2) steps and the last; each row carries the
    # global step the reward functions received through TRL's trainer_state.
    tables = sorted(a.path for a in client.list_artifacts(result.run_id, "samples"))
    assert tables == [f"samples/grpo_step_00000{i}.json" for i in (1, 2, 3)]
    seen = []
    for path in tables:
        table = load_dict(f"runs:/{result.run_id}/{path}")
        cols = table["columns"]
        assert {"completion", "ground_truth", "reward/format_reward", "reward/correctness_reward"} <= set(cols)
        seen.append({row[cols.index("step")] for row in table["data"]})
    assert seen == [{0}, {1}, {2}]

    assert client.get_model_version_by_alias("toolrl-grpo", "candidate").run_id == result.run_id
    metrics = json.loads(Path(params.grpo.metrics_file).read_text())
    assert metrics["global_step"] == 3 and metrics["variant"] == "default" and "first" in metrics["reward"]
    assert Path(result.plot_png).exists()


def test_grpo_with_dynamic_sampling_logs_its_passes(tmp_path, tiny_model_dir, mlflow_uri):
    from toolrl.training.grpo import run_grpo

    params = tiny_params(tmp_path, tiny_model_dir, mlflow_uri, ["grpo.dynamic_sampling=1", "grpo.max_steps=2"])
    result = run_grpo(params, say=lambda _: None)
    assert result.global_step == 2
    rows = read_csv(params.grpo.plots_file)
    for r in rows:
        assert float(r["dynamic_sampling/passes"]) in (0.0, 1.0)
        assert 0.0 <= float(r["dynamic_sampling/silent_kept"]) <= float(r["dynamic_sampling/silent_first"]) <= 1.0
    metrics = json.loads(Path(params.grpo.metrics_file).read_text())
    assert "dynamic_sampling/replaced" in metrics


def test_grpo_warm_start_needs_the_sft_model(tmp_path, tiny_model_dir, mlflow_uri):
    from toolrl.training.grpo import run_grpo

    params = tiny_params(tmp_path, tiny_model_dir, mlflow_uri, ["grpo.init=sft"])
    with pytest.raises(FileNotFoundError, match="toolrl train sft"):
        run_grpo(params, say=lambda _: None)


def test_accelerate_launch_path_trains_in_child_processes(tmp_path, tiny_model_dir, mlflow_uri, project_root):
    """With a launch config, `toolrl train` runs `accelerate launch -m toolrl.training.launch ...` and
    reads the result back (here accelerate's CPU mode: the GPU configs' code path, minus the GPUs)."""
    import os
    import subprocess
    import sys

    import yaml

    accel = tmp_path / "cpu.yaml"
    accel.write_text(yaml.safe_dump({"compute_environment": "LOCAL_MACHINE", "distributed_type": "NO",
                                     "mixed_precision": "no", "num_machines": 1, "num_processes": 1,
                                     "use_cpu": True, "machine_rank": 0}))
    params = tiny_params(tmp_path, tiny_model_dir, mlflow_uri, [
        f"sft.launch.accelerate_config={accel}", "sft.max_steps=2", "sft.probe_prompts=0",
        "tracking.register_models=false"])
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json")))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # accelerate is found beside the interpreter, PATH or not
    env.pop("MLFLOW_TRACKING_URI", None)
    out = subprocess.run([sys.executable, "-m", "toolrl.cli", "train", "sft", "--params", str(params_file)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"launching: accelerate launch --config_file {accel} -m toolrl.training.launch sft" in out.stderr
    done = checkpoints.read_done(Path(params.sft.output_dir))
    assert done["global_step"] == 2 and [r.info.run_id for r in _runs(mlflow_uri)] == [done["run_id"]]
