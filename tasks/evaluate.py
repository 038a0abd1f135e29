"""Task: score the models of `evaluate.models` and publish the accuracy table as a Prefect artifact.

No retries: a failure here (a missing model folder, a bad data file) fails the same way again. The
completion cache already makes a rerun cheap: only cases never generated are generated.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact

from toolrl.config import Params


# log_prints off: under Prefect's print capture, dill's stdout capture of `dis` output (how datasets
# fingerprints map functions) is logged instead of captured: noise, and wrong dataset fingerprints.
@task(name="evaluate-models", log_prints=False)
def evaluate_models(params: Params) -> dict[str, Any]:
    from toolrl.evaluation.report import arms_markdown, metrics_tree
    from toolrl.evaluation.stage import run_evaluation

    out = run_evaluation(params)
    warnings = "".join(f"- {w}\n" for w in out.results.warnings)
    create_markdown_artifact(
        key="evaluation",
        markdown=(f"# Evaluation\n\n{out.table_markdown}\n\n"
                  + (f"## Warnings\n\n{warnings}\n" if warnings else "")
                  + (f"## Methods across training seeds\n\n{arms_markdown(out.computed)}\n\n" if out.computed.shows_arms else "")
                  + f"Full report: `{out.files['markdown']}`; MLflow run `{out.run_id}`.\n"),
        description="Accuracy of every model per benchmark category",
    )
    return {"run_id": out.run_id, "metrics": metrics_tree(out.results), "generated": out.results.generated,
            "files": {k: str(v) for k, v in out.files.items()}}
