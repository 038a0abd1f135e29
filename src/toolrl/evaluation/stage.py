"""The `evaluate` stage: score the models, write the report, and file it all in the stage's MLflow run.

Called by `toolrl eval` and by the Prefect task alike. MLflow gets one metric per model, benchmark
and category (`evaluate/<model>/<benchmark>/<category>`, with `overall` and `overall_weighted`), the
BFCL cases on which the official checker crashed (`evaluate/<model>/bfcl/checker_errors`, and
`.../bfcl_multi_turn/checker_errors`), the
intervals and paired comparisons with the smallest difference each pair's cases detect at 80 % power
(`..._mdd80`) and, per benchmark, the one its cases detect at an assumed 20 % disagreement, the
generation throughput per model, each model's content hash as a tag, and the report files as
artifacts under `evaluation/`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from toolrl.config import EvaluateParams, Params
from toolrl.dicts import numbers
from toolrl.evaluation import report
from toolrl.evaluation.generation import Generator, make_generator
from toolrl.evaluation.runner import EvalResults, evaluate
from toolrl.evaluation.stats import ASSUMED_DISAGREEMENT
from toolrl.tracking import log_metrics, stage_run

STAGE = "evaluate"


@dataclass
class StageOutput:
    results: EvalResults
    files: dict[str, Path]
    run_id: str
    computed: report.Uncertainty

    @property
    def table_markdown(self) -> str:
        return report.accuracy_markdown(self.results)


def mlflow_metrics(results: EvalResults, computed: report.Uncertainty | None = None) -> dict[str, float]:
    tree = {report.metric_key(label): benches for label, benches in report.metrics_tree(results).items()}
    out = numbers(tree)  # a category without cases (None) is left out
    for m in results.models:
        out[f"{report.metric_key(m.label)}/generated"] = m.generated
        for bench in ("bfcl", "bfcl_multi_turn"):  # both graded by BFCL's official checkers
            if any(b == bench for b, _ in results.columns):
                out[f"{report.metric_key(m.label)}/{bench}/checker_errors"] = sum(
                    o.error == "checker_error" for o in m.grades(bench))
        if m.generated and m.generation_seconds:
            out[f"{report.metric_key(m.label)}/examples_per_s"] = m.generated / m.generation_seconds
    computed = computed or report.uncertainty(results)
    ci_rows, pairs = computed.intervals, computed.pairs
    for r in ci_rows:  # evaluate/<model>/<bench>/<category>_ci95_low, ..._high
        for side in ("low", "high"):
            out[f"{report.metric_key(r['model'])}/{r['scope']}_ci95_{side}"] = r[side]
    for c in pairs:  # evaluate/diff/<a>_vs_<b>/<bench>/<category>{,_ci95_low,...,_mdd80}
        key = f"diff/{report.metric_key(c.a)}_vs_{report.metric_key(c.b)}/{c.scope}"
        out.update({key: c.diff, f"{key}_ci95_low": c.low, f"{key}_ci95_high": c.high, f"{key}_mcnemar_p": c.p_value})
        if c.p_holm is not None:
            out[f"{key}_mcnemar_p_holm"] = c.p_holm
        if c.detectable is not None:
            out[f"{key}_mdd80"] = c.detectable
    for r in computed.arms:  # evaluate/arm/<arm>/<bench>/overall_mean, ..._sd
        key = f"arm/{report.metric_key(r['arm'])}/{r['benchmark']}/overall"
        out.update({f"{key}_mean": r["mean"], f"{key}_sd": r["sd"], f"{key}_checkpoints": len(r["scores"])})
    for c in computed.arm_pairs:  # evaluate/arm_diff/<a>_vs_<b>/<bench>/<category>{,_ci95_low,...}
        key = f"arm_diff/{report.metric_key(c.a)}_vs_{report.metric_key(c.b)}/{c.scope}"
        out.update({key: c.diff, f"{key}_ci95_low": c.low, f"{key}_ci95_high": c.high, f"{key}_welch_p": c.p_value})
        if c.p_holm is not None:
            out[f"{key}_welch_p_holm"] = c.p_holm
    for row in report.power(results, pairs):  # what the sample size alone buys, comparable across runs
        if row["assumed"] is not None:
            out[f"power/{row['benchmark']}/mdd80_at_{100 * ASSUMED_DISAGREEMENT:.0f}pct_disagreement"] = row["assumed"]
    return out


def run_evaluation(params: Params,
                   generator_factory: Callable[[Path, EvaluateParams], Generator] = make_generator,
                   show_progress: bool = True) -> StageOutput:
    import mlflow

    with stage_run(params, STAGE, log_params=params.evaluate) as run:
        results = evaluate(params, generator_factory, show_progress)
        computed = report.uncertainty(results, params.evaluate.arms)
        files = report.write(results, params.evaluate, run_id=run.info.run_id, computed=computed)
        log_metrics(STAGE, mlflow_metrics(results, computed))
        mlflow.set_tags({f"evaluate.model.{report.metric_key(m.label)}": m.model.content_hash[:16]
                         for m in results.models})
        for path in files.values():
            sub = "evaluation/plots" if path.parent.name == report.PLOTS_DIR else "evaluation"
            mlflow.log_artifact(str(path), artifact_path=sub)
        if results.warnings:
            mlflow.log_text("\n".join(results.warnings) + "\n", "evaluation/warnings.txt")
    return StageOutput(results=results, files=files, run_id=run.info.run_id, computed=computed)
