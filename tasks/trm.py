"""Tasks of the TRM stages (`toolrl.trm`): build the step data, train the TRM, run TRM-guided GRPO, and
their Prefect artifacts. Not retried: none of them fails transiently, and the training ones resume
from their last checkpoint when the stage is run again."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from toolrl.config import Params


# log_prints off: under Prefect's print capture, dill's stdout capture of `dis` output (how datasets
# fingerprints map functions) is logged instead of captured: noise, and wrong dataset fingerprints.
# The stage's own messages go to the run logger (`say`).
@task(name="trm-data", retries=0, log_prints=False)
def build_trm_data(params: Params) -> dict[str, Any]:
    from toolrl.trm.data import run_trm_data

    return run_trm_data(params, say=get_run_logger().info)


@task(name="trm-train", retries=0, log_prints=False)
def train_trm(params: Params, fresh: bool = False) -> dict[str, Any]:
    from toolrl.trm.trainer import run_trm

    return run_trm(params, fresh=fresh, say=get_run_logger().info).to_dict()


@task(name="publish-trm-data-card")
def publish_trm_data(params: Params) -> None:
    from pathlib import Path

    card = Path(params.trm.data.output_dir) / "card.md"
    create_markdown_artifact(key="trm-data-card", markdown=card.read_text(encoding="utf-8"),
                             description="TRM step records: provenance, sizes, label balance, hard negatives")


@task(name="publish-trm-report")
def publish_trm(result: dict[str, Any]) -> None:
    m = result.get("metrics", {})
    rows = []
    for part in ("val", "val_policy", "val_reference", "val_negative"):
        if part in m:
            v = m[part]
            rows.append(f"| {part} | {v.get('n', 0):.0f} | {v.get('accuracy', 0):.3f} | {v.get('precision', 0):.3f} | "
                        f"{v.get('recall', 0):.3f} | {v.get('f1', 0):.3f} | {v.get('roc_auc', 0):.3f} |")
    state = "reused (already trained with these params)" if result.get("skipped") else "trained"
    create_markdown_artifact(
        key="trm-report",
        markdown=(f"# Tool-call Reward Model\n\n| | |\n|---|---|\n| state | {state} |\n"
                  f"| output | `{result.get('output_dir')}` |\n| MLflow run | `{result.get('run_id')}` |\n"
                  f"| registered | `{result.get('registered_model')}` v{result.get('version')} |\n"
                  f"| steps | {m.get('global_step')} (early stop: {m.get('stopped_early')}) |\n"
                  f"| rule agreement (held-out policy calls) | {m.get('rule_agreement', float('nan')):.3f} |\n"
                  f"| calibration plot | `{result.get('plot_png')}` |\n\n"
                  "## Held-out step records\n\n| records | n | accuracy | precision | recall | F1 | ROC-AUC |\n"
                  "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"),
        description="TRM: held-out classification metrics, rule agreement, calibration plot, MLflow run",
    )
