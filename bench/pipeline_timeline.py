"""Where a pipeline run's time went, read off its MLflow runs: each stage's run, and what lies between.

    .venv/bin/python bench/pipeline_timeline.py --tracking-uri sqlite:///mlruns.db [--parent RUN_ID]

The pipeline flow opens a parent run; each stage nests its own run (`toolrl.tracking.stage_run`),
which logs `system/stage_seconds` and `system/peak_rss_gb`. Time inside the stage runs is the stages'
work; the rest of the parent's wall time is what orchestration costs around them: a new process per
stage importing the ML stack, Prefect flow and task runs, DVC hashing deps and outputs, and the work a
stage does before it opens its run (reading data). That share is an upper bound on the overhead of
Prefect + DVC + MLflow on a real (default-profile) run, where bench/pipeline_overhead.py measures it
on the smoke profile against direct calls. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracking-uri", required=True)
    ap.add_argument("--experiment", default="toolrl")
    ap.add_argument("--parent", help="the pipeline's parent run id (default: the latest finished one)")
    args = ap.parse_args()

    import mlflow

    mlflow.set_tracking_uri(args.tracking_uri)
    exp = mlflow.get_experiment_by_name(args.experiment)
    if exp is None:
        sys.exit(f"no MLflow experiment {args.experiment!r} at {args.tracking_uri}")
    if args.parent:
        parent = mlflow.get_run(args.parent)
    else:
        found = mlflow.search_runs([exp.experiment_id], filter_string="tags.toolrl.stage = 'pipeline'",
                                   order_by=["attributes.start_time DESC"], output_format="list")
        found = [r for r in found if r.info.status == "FINISHED"]
        if not found:
            sys.exit("no finished pipeline run: pass --parent")
        parent = found[0]
    children = mlflow.search_runs([exp.experiment_id], output_format="list",
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    children.sort(key=lambda r: r.info.start_time)
    print(f"pipeline run {parent.info.run_id} ({parent.data.tags.get('dvc.exp_name', '')})\n")
    print("| stage | MLflow run | start | run wall (s) | peak RSS (GB) | gap before (s) |\n|---|---|---|---|---|---|")
    inside = 0.0
    last_end = parent.info.start_time
    for run in children:
        # A resumed stage's run keeps its first start time: its own figure counts this attempt only.
        wall = run.data.metrics.get("system/stage_seconds", (run.info.end_time - run.info.start_time) / 1000)
        inside += wall
        gap = (run.info.start_time - last_end) / 1000
        last_end = run.info.end_time
        rss = run.data.metrics.get("system/peak_rss_gb")
        stage = run.data.tags.get("toolrl.stage", run.info.run_name)
        print(f"| {stage} | {run.info.run_id[:8]} | {_clock(run.info.start_time)} | {wall:.0f} | "
              f"{'' if rss is None else f'{rss:.2f}'} | {gap:.0f} |")
    total = (parent.info.end_time - parent.info.start_time) / 1000
    if not children:
        sys.exit(f"pipeline wall {total:.0f} s; no stage ran (all up to date or restored from the cache)")
    outside = total - inside
    print(f"\npipeline wall {total:.0f} s; inside stage runs {inside:.0f} s; outside {outside:.0f} s "
          f"= {100 * outside / total:.1f} % of the run ({100 * outside / inside:.1f} % on top of the stages)")


def _clock(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%H:%M:%S")


if __name__ == "__main__":
    main()
