"""`toolrl eval` end to end on tiny-random: report files, MLflow metrics, and a cached rerun."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TOOLRL = Path(sys.executable).parent / "toolrl"


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "level-2-api_processed.json").write_text(json.dumps([
        {"system": "Tools: 1. Name: ToolA", "user": "<user> use tool a </user>",
         "answer": "{'name': 'ToolA', 'parameters': {'q': 'x'}}", "other": {}},
        {"system": "Tools: 1. Name: ToolB", "user": "<user> use tool b </user>",
         "answer": "{'name': 'ToolB', 'parameters': {}}", "other": {}},
    ]))
    (tmp_path / "params.yaml").write_text(
        f"tracking:\n  tracking_uri: sqlite:///{tmp_path / 'mlruns.db'}\n"
        "evaluate:\n  max_new_tokens: 8\n  batch_size: 2\n"
        "  bfcl_categories: [simple_python, parallel, irrelevance]\n"
    )
    return tmp_path


def toolrl_eval(cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return subprocess.run(
        [str(TOOLRL), "eval", "--models", "tiny-random,sft", "--benchmarks", "bfcl,api_bank", "--limit", "2",
         "--api-bank", "level-2-api_processed.json", *extra],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )


@pytest.mark.slow
def test_toolrl_eval_writes_the_report_and_reuses_the_cache(workdir):
    first = toolrl_eval(workdir)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "generated 8 new completions" in " ".join(first.stderr.split())

    reports = workdir / "reports"
    for name in ("eval.md", "eval.csv", "metrics.json", "eval_examples.jsonl", "eval_plots/eval_overall.png",
                 "eval_plots/eval_bfcl_simple_python.png", "eval_plots/eval_api_bank_level_2.png"):
        assert (reports / name).is_file(), name

    rows = list(csv.reader((reports / "eval.csv").open()))
    assert rows[0] == ["model", "bfcl/simple_python", "bfcl/parallel", "bfcl/irrelevance", "bfcl/overall",
                       "bfcl/overall_weighted", "api_bank/level_2", "api_bank/overall",
                       "api_bank/overall_weighted"]
    assert [r[0] for r in rows[1:]] == ["tiny-random"]  # sft has not run: skipped, not a crash

    metrics = json.loads((reports / "metrics.json").read_text())
    bfcl = metrics["tiny-random"]["bfcl"]
    assert set(bfcl) == {"simple_python", "parallel", "irrelevance", "overall", "overall_weighted"}
    assert bfcl["overall"] == pytest.approx((bfcl["simple_python"] + bfcl["parallel"] + bfcl["irrelevance"]) / 3,
                                            abs=1e-3)

    md = (reports / "eval.md").read_text()
    assert "model sft: stage 'sft' has no model" in md
    assert "## Error categories" in md and "## Example failures" in md
    examples = [json.loads(line) for line in (reports / "eval_examples.jsonl").read_text().splitlines()]
    assert len(examples) == 8 and all(e["correct"] or e["error"] for e in examples)

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlruns.db'}")
    run_id = md.split("MLflow run: `")[1].split("`")[0]
    logged = client.get_run(run_id).data.metrics
    assert logged["evaluate/tiny-random/bfcl/overall"] == pytest.approx(bfcl["overall"])
    assert logged["evaluate/tiny-random/generated"] == 8
    artifacts = {a.path for a in client.list_artifacts(run_id, "evaluation")}
    assert "evaluation/eval.md" in artifacts

    second = toolrl_eval(workdir)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "generated 0 new completions" in " ".join(second.stderr.split())
    assert json.loads((reports / "metrics.json").read_text()) == metrics


def test_bad_options_exit_2_with_one_line(workdir):
    out = toolrl_eval(workdir, "--bfcl-categories", "simple_java")
    assert out.returncode == 2
    assert "evaluate.bfcl_categories" in out.stderr and "Traceback" not in out.stderr
    missing = subprocess.run([str(TOOLRL), "eval", "--models", "tiny-random", "--benchmarks", "api_bank",
                              "--api-bank", "nowhere/level-1.json"], cwd=workdir, capture_output=True, text=True,
                             timeout=600)
    assert missing.returncode == 2 and "evaluate.api_bank_paths" in missing.stderr
