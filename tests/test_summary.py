"""What a run reports at its end (`toolrl.summary`), without Prefect: the pipeline's summary, its
links and closing lines, and the training stages' reports."""

from __future__ import annotations

import subprocess
import sys

from toolrl.summary import (
    grpo_report,
    metrics_table,
    mlflow_url,
    pipeline_metrics,
    pipeline_summary,
    prefect_run_url,
    sft_report,
    summary_markdown,
    summary_text,
    trm_report,
)


def _summary(tmp_path, temp=False, write_report=True):
    if write_report:
        (tmp_path / "reports").mkdir(exist_ok=True)
        (tmp_path / "reports" / "eval.md").write_text("# eval\n")
    return pipeline_summary(
        experiment="default-run", rev="abc123", profile="default", overrides=["grpo.seed=1"], temp=temp,
        ran=["grpo", "evaluate"], skipped=["sft"], restored=[],
        metrics={"evaluate/grpo/overall": 0.41234, "grpo/reward": 1.5}, mlflow_run_id="r1",
        mlflow_experiment_id="7", mlflow_url="http://mlflow/#/r1", prefect_url=None,
        report="reports/eval.md", root=tmp_path)


def test_pipeline_metrics_are_named_after_the_stage_that_writes_the_file():
    trees = {"reports/metrics/grpo.json": {"reward": 1.5, "by": {"format": 0.5}, "variant": "coarse"},
             "other/extra.json": {"n": 3}}
    metrics = pipeline_metrics(trees, {"reports/metrics/grpo.json": "grpo"})
    assert metrics == {"grpo/reward": 1.5, "grpo/by/format": 0.5, "extra/n": 3.0}
    assert metrics_table({"b": 2.0, "a": 1.0}) == [{"metric": "a", "value": 1.0}, {"metric": "b", "value": 2.0}]


def test_links_to_mlflow_and_prefect():
    assert mlflow_url("http://127.0.0.1:5000/", "7", "r1") == "http://127.0.0.1:5000/#/experiments/7/runs/r1"
    assert "mlflow ui --backend-store-uri sqlite:///x.db" in mlflow_url("sqlite:///x.db", "7", "r1")
    assert prefect_run_url("http://127.0.0.1:4200/api", "f1") == "http://127.0.0.1:4200/runs/flow-run/f1"
    assert prefect_run_url("http://h/api", "f1", "http://ui/") == "http://ui/runs/flow-run/f1"
    assert prefect_run_url(None, "f1") is None and prefect_run_url("http://h/api", None) is None


def test_the_summary_names_the_report_only_when_the_workspace_has_it(tmp_path):
    summary = _summary(tmp_path)
    assert summary["report"] == "reports/eval.md" and summary["where"].startswith("the workspace")
    assert summary["experiment_rev"] == "abc123"
    temp = _summary(tmp_path, temp=True, write_report=False)
    assert temp["report"] is None and "dvc exp apply default-run" in temp["where"]


def test_summary_markdown_and_closing_lines(tmp_path):
    summary = _summary(tmp_path)
    text = summary_markdown(summary)
    assert text.startswith("# Pipeline run `default-run`")
    assert "- stages ran: grpo, evaluate" in text and "- stages restored: -" in text
    assert "| evaluate/grpo/overall | 0.4123 |" in text and "- report: `reports/eval.md`" in text
    lines = summary_text(summary).splitlines()
    assert lines[:3] == ["", "== pipeline finished ==", "  evaluate/grpo/overall = 0.4123"]
    assert "stages ran : grpo, evaluate;  up to date: sft" in lines
    assert lines[-1] == "MLflow     : http://mlflow/#/r1"  # no Prefect line without a server


def test_the_flow_prints_the_domain_text(tmp_path, capsys):
    from flows.pipeline import print_summary

    summary = _summary(tmp_path)
    print_summary(summary)
    assert capsys.readouterr().out == summary_text(summary) + "\n"


def test_the_summary_module_needs_no_prefect():
    code = "import sys, toolrl.summary; assert not [m for m in sys.modules if m.startswith('prefect')]"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def _train_result(tmp_path, **extra):
    return {"skipped": False, "output_dir": "models/sft", "global_step": 4, "run_id": "r9",
            "model_uri": "models:/toolrl-sft/1", "metrics_file": "reports/metrics/sft.json", **extra}


def test_sft_report_shows_the_probe_before_and_after(tmp_path):
    csv = tmp_path / "sft_loss.csv"
    csv.write_text("step,loss,learning_rate\n1,2.0,5e-05\n2,1.5,5e-05\n")
    result = _train_result(tmp_path, plots_file=str(csv), resumed_from="checkpoint-2", metrics={
        "probe_before": {"well_formed_share": 0.25}, "probe_after": {"well_formed_share": 0.75}})
    text = sft_report(result)
    assert text.startswith("# SFT\n\n| | |\n|---|---|\n| state | trained |")
    assert "| resumed from | `checkpoint-2` |" in text
    assert "| well_formed_share | 0.250 | 0.750 |" in text and "| parseable_call_share | nan | nan |" in text
    assert "## Loss per step" in text and "1.5" in text


def test_grpo_report_shows_first_vs_last_fifth(tmp_path):
    result = _train_result(tmp_path, skipped=True, plot_png="reports/plots/grpo.png", metrics={
        "variant": "coarse", "init": "sft", "reward": {"first": 0.5, "last": 1.25, "gain": 0.75}})
    text = grpo_report(result)
    assert text.startswith("# GRPO (variant `coarse`, init `sft`)")
    assert "| state | reused (already trained with these params) |" in text
    assert "| reward | 0.500 | 1.250 | +0.750 |" in text and "plot: `reports/plots/grpo.png`" in text


def test_trm_report_lists_the_held_out_records():
    result = {"skipped": False, "output_dir": "models/trm", "run_id": "r3", "registered_model": "toolrl-trm",
              "version": 2, "plot_png": "reports/plots/trm_calibration.png",
              "metrics": {"global_step": 16, "stopped_early": False, "rule_agreement": 0.9,
                          "val": {"n": 40, "accuracy": 0.8, "precision": 0.75, "recall": 0.7, "f1": 0.72,
                                  "roc_auc": 0.85}}}
    text = trm_report(result)
    assert "| registered | `toolrl-trm` v2 |" in text and "| rule agreement (held-out policy calls) | 0.900 |" in text
    assert "| val | 40 | 0.800 | 0.750 | 0.700 | 0.720 | 0.850 |" in text
    assert "val_policy" not in text
