"""Flow `pipeline`: the whole chain, run through DVC, as one MLflow parent run and one DVC experiment.

Why through DVC: DVC decides what is stale (code, data and each stage's params section), so a run
started here, a stage run by hand (`python -m flows.<stage>` inside `dvc repro`) and a plain
`dvc repro` share one cache and never redo each other's work. The UI's parameters (a profile and
`key=value` overrides) become `dvc exp run -S` overrides, so every run is a DVC experiment that
`dvc exp show` lists and `dvc exp apply` brings back.

Where it runs: without overrides, in the workspace (results land in data/, models/, reports/);
with a profile or overrides, by default in a DVC temp workspace (`--temp`), so params.yaml and the
workspace's outputs are left as they were. Set `isolated` to choose.

    python -m flows.pipeline                      # default params, in the workspace
    python -m flows.pipeline --profile smoke      # the smoke profile, as an isolated experiment
    python -m flows.pipeline -S grpo.reward.variant=coarse --stage grpo
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import FlowRunContext

from flows.common import PIPELINE_TAG_ENV, exit_on_sigterm, prefect_settings
from tasks.dvc import DvcError, dvc_exp_results, dvc_exp_run
from toolrl.config import ConfigError, load_params
from toolrl.orchestration import (
    experiment_name,
    metrics_files,
    parent_run,
    stage_env,
)
from toolrl.profiles import DEFAULT_PROFILE, compose, dvc_set_args
from toolrl.summary import (
    metrics_table,
    mlflow_url,
    pipeline_metrics,
    pipeline_summary,
    prefect_run_url,
    summary_markdown,
    summary_text,
)
from toolrl.tracking import tracking_uri

PARAMS_FILE = "params.yaml"


def _prefect_api_url() -> str | None:
    """The API this flow run talks to (a server, or this process's temporary one), for the stages."""
    ctx = FlowRunContext.get()
    client = getattr(ctx, "client", None) if ctx else None
    url = getattr(client, "api_url", None)
    return str(url).rstrip("/") if url else os.environ.get("PREFECT_API_URL")


def _flow_run() -> tuple[str, str] | None:
    ctx = FlowRunContext.get()
    if ctx and ctx.flow_run:
        return str(ctx.flow_run.id), ctx.flow_run.name
    return None


def _prefect_ui_url(api_url: str | None, flow_run_id: str | None) -> str | None:
    """The run's page in the Prefect UI; None with Prefect's temporary server (gone at exit)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    if not PREFECT_API_URL.value():
        return None
    return prefect_run_url(api_url, flow_run_id, PREFECT_UI_URL.value())


@flow(name="pipeline", log_prints=True)
def pipeline(
    profile: str = DEFAULT_PROFILE,
    overrides: list[str] | None = None,
    stages: list[str] | None = None,
    experiment: str | None = None,
    isolated: bool | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Run the DAG (or `stages` and what they depend on) as a DVC experiment.

    profile: a name in configs/ (`smoke`, `full`) or `default` (params.yaml as it is).
    overrides: `key.sub=value` params overrides, applied after the profile.
    stages: DVC stage names to bring up to date (empty: all).
    experiment: the DVC experiment's name (default: from the flow run's name).
    isolated: run in a DVC temp workspace (default: only when there are overrides).
    force: rerun the stages even if DVC finds them up to date.
    """
    logger = get_run_logger()
    root = Path.cwd()
    combined = compose(profile, overrides or [], root=root, params_file=PARAMS_FILE)
    params = load_params(root / PARAMS_FILE, combined)
    run_info = _flow_run()
    name = experiment_name(experiment or (f"{profile}-{run_info[1]}" if run_info else profile))
    temp = bool(combined) if isolated is None else isolated
    api_url = _prefect_api_url()

    import mlflow

    with parent_run(params, name, profile, combined) as run:
        env = stage_env(run.info.run_id, params)
        env[PIPELINE_TAG_ENV] = f"pipeline:{name}"
        if api_url:
            env["PREFECT_API_URL"] = api_url  # stages report to the same server as this run
        result = dvc_exp_run(str(root), dvc_set_args(combined, root / PARAMS_FILE), list(stages or []),
                             name, temp, env, force)
        exp = dvc_exp_results(str(root), name, temp)
        metrics = pipeline_metrics(exp["metrics"], metrics_files(root / "dvc.yaml"))
        if metrics:
            mlflow.log_metrics(metrics)  # final numbers on the parent: compare pipeline runs side by side
        mlflow.set_tags({"dvc.exp_rev": exp.get("rev") or "", "toolrl.stages_ran": ",".join(result.ran)})

    uri = tracking_uri(params.tracking)
    summary = pipeline_summary(
        experiment=name, rev=exp.get("rev"), profile=profile, overrides=combined, temp=temp, ran=result.ran,
        skipped=result.skipped, restored=result.restored, metrics=metrics, mlflow_run_id=run.info.run_id,
        mlflow_experiment_id=run.info.experiment_id,
        mlflow_url=mlflow_url(env["MLFLOW_TRACKING_URI"] if uri.startswith("sqlite") else uri,
                              run.info.experiment_id, run.info.run_id),
        prefect_url=_prefect_ui_url(api_url, run_info[0] if run_info else None),
        report=Path(params.evaluate.output_dir) / "eval.md", root=root)
    create_markdown_artifact(key="pipeline-summary", markdown=summary_markdown(summary),
                             description=f"Pipeline run {name}")
    if metrics:
        create_table_artifact(key="pipeline-metrics", table=metrics_table(metrics),
                              description=f"Final metrics of {name}")
    logger.info("pipeline %s: ran %s, skipped %s, restored %s", name, result.ran or "-", result.skipped or "-",
                result.restored or "-")
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    """The end of `make run` (`toolrl.summary.summary_text`)."""
    print(summary_text(summary))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help="configs/<profile>.yaml, or default")
    parser.add_argument("--set", "-S", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--stage", dest="stages", action="append", default=[], help="stage to bring up to date")
    parser.add_argument("--name", default=None, help="DVC experiment name")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--isolated", dest="isolated", action="store_true", default=None)
    where.add_argument("--workspace", dest="isolated", action="store_false")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    try:
        with exit_on_sigterm(), prefect_settings():
            summary = pipeline(profile=args.profile, overrides=args.overrides, stages=args.stages,
                               experiment=args.name, isolated=args.isolated, force=args.force)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DvcError as exc:  # the stage's own log is above; this says what failed, without a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print_summary(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
