"""tiny-random end to end: trm_data -> trm -> grpo_trm (a few prompts, a few steps), and the scorer CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from training_fixtures import tiny_params


@pytest.fixture
def params(tmp_path, tiny_model_dir, mlflow_uri):
    t = tmp_path
    return tiny_params(t, tiny_model_dir, mlflow_uri, [
        "trm.data.policy=base", "trm.data.prompts=8", "trm.data.samples_per_prompt=2", "trm.data.max_new_tokens=24",
        "trm.data.hard_negatives_per_call=2", "trm.data.val_fraction=0.25", f"trm.data.output_dir={t}/data/trm",
        f"trm.model.output_dir={t}/models/trm", "trm.model.max_steps=4", "trm.model.eval_steps=2",
        "trm.model.logging_steps=1", "trm.model.per_device_train_batch_size=4", "trm.model.max_length=256",
        f"trm.model.plots_file={t}/reports/plots/trm_train.csv", f"trm.model.metrics_file={t}/reports/metrics/trm.json",
        f"trm.model.calibration_plot={t}/reports/plots/trm_calibration.png",
        f"trm.grpo.output_dir={t}/models/grpo_trm", f"trm.grpo.plots_file={t}/reports/plots/grpo_trm.csv",
        f"trm.grpo.metrics_file={t}/reports/metrics/grpo_trm.json", "grpo.max_steps=2",
    ])


@pytest.mark.slow
def test_trm_data_trm_grpo_trm(params, tmp_path):
    import mlflow

    from toolrl.trm.data import run_trm_data
    from toolrl.trm.grpo import run_grpo_trm
    from toolrl.trm.steps import read_steps
    from toolrl.trm.trainer import run_trm

    # trm_data
    stats = run_trm_data(params)
    out = tmp_path / "data" / "trm"
    for name in ("train.jsonl", "val.jsonl", "quarantine.jsonl", "stats.json", "card.md"):
        assert (out / name).exists(), name
    train, val = read_steps(out / "train.jsonl"), read_steps(out / "val.jsonl")
    assert stats["completions"] == 16 and stats["train/records"] == len(train) > 0 and len(val) > 0
    assert {r["label"] for r in train} == {0, 1}
    assert abs(stats["train/positive_fraction"] - 0.5) < 0.2  # balanced to positive_fraction 0.5
    assert not {r["prompt_id"] for r in train} & {r["prompt_id"] for r in val}  # split by prompt
    assert any(k.startswith("negative/") for k in stats) and "## Hard negatives" in (out / "card.md").read_text()
    mlflow.set_tracking_uri(params.tracking.tracking_uri)
    data_run = mlflow.get_run(stats["mlflow_run_id"])
    assert data_run.data.metrics["trm_data/completions"] == 16 and data_run.data.tags["toolrl.stage"] == "trm_data"

    # trm
    result = run_trm(params).to_dict()
    m = result["metrics"]
    assert m["global_step"] <= 4 and m["val"]["n"] == len(val)
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert 0.0 <= m["val"][key] <= 1.0
    meta = json.loads((tmp_path / "models" / "trm" / "trm.json").read_text())
    assert meta["max_length"] == 256 and meta["keep_called_tool"] is True  # scoring reads steps as training did
    curve = (tmp_path / "reports" / "plots" / "trm_train.csv").read_text().splitlines()[0].split(",")
    assert "loss" in curve and "eval_roc_auc" in curve
    assert (tmp_path / "reports" / "plots" / "trm_calibration.png").stat().st_size > 0
    assert json.loads((tmp_path / "reports" / "metrics" / "trm.json").read_text())["val"]["roc_auc"] == m["val"]["roc_auc"]
    version = mlflow.MlflowClient().get_model_version_by_alias("toolrl-trm", "candidate")
    assert version.run_id == result["run_id"]
    run = mlflow.get_run(result["run_id"])
    assert "trm/val/roc_auc" in run.data.metrics and "trm/loss" in run.data.metrics
    # the registered pyfunc scores calls, and carries the model's files, not the Trainer's checkpoints
    logged = Path(mlflow.artifacts.download_artifacts("models:/toolrl-trm@candidate"))
    # (checkpoints at steps 2 and 4 were in the folder when it was logged; the stage deletes them after)
    weights = [p.relative_to(logged) for p in logged.rglob("model.safetensors")]
    assert len(weights) == 1 and "checkpoints" not in str(weights[0]) and not list(logged.rglob("checkpoint-*"))
    assert not list((tmp_path / "models").glob(".trm-log-*"))  # the linked copy is gone
    model = mlflow.pyfunc.load_model("models:/toolrl-trm@candidate")
    rec = json.loads((tmp_path / "data" / "curated" / "train.jsonl").read_text().splitlines()[0])
    scores = model.predict([{"prompt": rec["prompt"], "completion": rec["ground_truth"]}])
    assert len(scores) == 1 and len(scores[0]) == 1 and 0.0 <= scores[0][0] <= 1.0
    assert run_trm(params).skipped  # a finished run is not redone

    # toolrl trm score (the CLI)
    rows = tmp_path / "in.jsonl"
    rows.write_text(json.dumps({"id": "a", "prompt": rec["prompt"], "completion": rec["ground_truth"]}) + "\n"
                    + json.dumps({"id": "b", "tools": rec["tools"], "conversation": rec["conversation"],
                                  "completion": [{"role": "assistant", "content": "<think> x </think>"}]}) + "\n"
                    + '{"id": "c"}\n' + "{not json\n")
    done = subprocess.run([sys.executable, "-m", "toolrl.cli", "trm", "score", "--model", str(tmp_path / "models" / "trm"),
                           "--input", str(rows), "--output", str(tmp_path / "out.jsonl")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    scored = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in scored] == ["a", "b", 3, 4]
    assert scored[3]["error"].startswith("line 4: not valid JSON")
    assert len(scored[0]["calls"]) == 1 and scored[0]["calls"][0]["score"] == pytest.approx(scores[0][0], abs=1e-4)
    assert scored[1]["calls"] == [] and "needs `prompt`" in scored[2]["error"]

    # toolrl trm compare: the same TRM read with and without the called tool's entry, on the same held-out calls
    import shutil

    from toolrl.trm.compare import compare_trms

    plain = shutil.copytree(tmp_path / "models" / "trm", tmp_path / "models" / "trm_plain")
    meta = json.loads((plain / "trm.json").read_text())
    (plain / "trm.json").write_text(json.dumps({**meta, "keep_called_tool": False}))
    rows = compare_trms(params, [tmp_path / "models" / "trm", plain], tmp_path / "cmp", say=lambda m: None)
    assert rows[0]["diff_to_first"] is None and rows[0]["roc_auc"] == pytest.approx(m["val"]["roc_auc"], abs=1e-3)
    assert rows[1]["diff_to_first"] == pytest.approx(rows[1]["roc_auc"] - rows[0]["roc_auc"])
    assert rows[1]["diff_low"] <= rows[1]["diff_to_first"] <= rows[1]["diff_high"]
    scored = [json.loads(line) for line in (tmp_path / "cmp" / "scores.jsonl").read_text().splitlines()]
    assert len(scored) == len(val) and scored[0]["scores"].keys() == {str(tmp_path / "models" / "trm"), str(plain)}
    # the 256-token cut took the tool list away: the two readings differ
    assert any(len(set(r["scores"].values())) > 1 for r in scored)
    assert "paired difference to the first" in (tmp_path / "cmp" / "compare.md").read_text()
    with pytest.raises(ValueError, match="two or more different"):
        compare_trms(params, [plain, plain], tmp_path / "cmp")
    done = subprocess.run([sys.executable, "-m", "toolrl.cli", "trm", "compare", "--models", f"{plain},{tmp_path}"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "is not a trained TRM" in done.stderr + done.stdout

    # grpo_trm: same init and budget as grpo, own output folder, registered
    res = run_grpo_trm(params)
    assert res.stage == "grpo_trm" and res.global_step == params.grpo.max_steps
    assert (tmp_path / "models" / "grpo_trm" / "config.json").exists()
    metrics = json.loads((tmp_path / "reports" / "metrics" / "grpo_trm.json").read_text())
    assert "trm/mean_calls" in metrics
    header = (tmp_path / "reports" / "plots" / "grpo_trm.csv").read_text().splitlines()[0]
    assert "trm/mean_calls" in header and "reward" in header
    version = mlflow.MlflowClient().get_model_version_by_alias("toolrl-grpo-trm", "candidate")
    assert version.run_id == res.run_id and "grpo_trm/trm/mean_calls" in mlflow.get_run(res.run_id).data.metrics


def test_missing_inputs_are_clear_errors(params):
    from toolrl.trm.data import run_trm_data
    from toolrl.trm.grpo import run_grpo_trm
    from toolrl.trm.trainer import run_trm

    with pytest.raises(FileNotFoundError, match="toolrl train sft"):
        run_trm_data(params.model_copy(update={"trm": params.trm.model_copy(
            update={"data": params.trm.data.model_copy(update={"policy": "sft"})})}))
    with pytest.raises(FileNotFoundError, match="toolrl trm data"):
        run_trm(params)
    with pytest.raises(FileNotFoundError, match="toolrl trm train"):
        run_grpo_trm(params)
