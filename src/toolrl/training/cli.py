"""`toolrl train sft|grpo`: run a training stage from params.yaml (+ `-S key=value` overrides).

Without `<stage>.launch.accelerate_config` the stage trains in this process (CPU, one GPU); with one,
the command runs `accelerate launch ... -m toolrl.training.launch <stage> ...` and waits for it.
`--dry-run` validates the configuration (down to TRL's config object) and prints the exact commands
without running anything. A stopped run started again resumes from its last checkpoint.
`compare` plots one column of several runs; `windows` tables their means over windows of steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toolrl.cli import ParamsOpt, SetOpt, UserError, console, load

app = typer.Typer(help="Training stages: the SFT baseline and GRPO with the ToolRL reward.", no_args_is_help=True)

FreshOpt = Annotated[bool, typer.Option("--fresh", help="start over, ignoring checkpoints in the output folder")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="validate and print the launch command(s); run nothing")]


@app.command("sft")
def sft(params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None, fresh: FreshOpt = False,
        dry_run: DryRunOpt = False) -> None:
    """SFT baseline: TRL SFTTrainer on the curated SFT view -> sft.output_dir (models/sft)."""
    _train("sft", params, set_ or [], fresh, dry_run)


@app.command("grpo")
def grpo(params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None, fresh: FreshOpt = False,
         dry_run: DryRunOpt = False) -> None:
    """GRPO with the ToolRL reward variant grpo.reward.variant -> grpo.output_dir (models/grpo)."""
    _train("grpo", params, set_ or [], fresh, dry_run)


RunOpt = Annotated[list[str], typer.Option("--run", help="LABEL=CSV or LABEL=mlflow:RUN_ID: a stage's per-step "
                                                           "CSV, or an MLflow run's metric history (repeat)")]
TrackingUriOpt = Annotated[str | None, typer.Option(help="MLflow store of mlflow: runs (default: MLFLOW_TRACKING_URI)")]


@app.command("compare")
def compare(
    run: RunOpt,
    column: Annotated[str, typer.Option(help="the CSV column / metric to plot, e.g. reward, tool_calls/mean_calls")],
    out: Annotated[Path, typer.Option(help="PNG to write")],
    title: Annotated[str, typer.Option()] = "",
    window: Annotated[int, typer.Option(min=1, help="running mean over this many steps")] = 1,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Plot one column of several runs side by side (e.g. GRPO vs GRPO+TRM call counts, or the grid's
    experiments from MLflow)."""
    from toolrl.training.publish import plot_runs

    try:
        png = plot_runs(_runs(run), column, out, title or column, window, tracking_uri)
    except (ValueError, KeyError) as exc:
        raise UserError(str(exc)) from None
    console.print(f"wrote {png}")


@app.command("windows")
def windows(
    run: RunOpt,
    column: Annotated[list[str] | None, typer.Option(help="a CSV column / metric (repeat); default: reward, "
                                                          "correctness, calls, zero-variance groups, entropy, KL")] = None,
    size: Annotated[int, typer.Option(min=1, help="steps in a window")] = 25,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Means over windows of steps of a run, or of several side by side, as a markdown table (for
    docs/RESULTS.md): the evidence that reading a run rests on, e.g. GRPO with and without dynamic sampling."""
    from toolrl.training.publish import WINDOW_COLUMNS, windows_table

    try:
        typer.echo(windows_table(_runs(run), column or list(WINDOW_COLUMNS), size, tracking_uri))
    except (ValueError, KeyError) as exc:
        raise UserError(str(exc)) from None


def _runs(items: list[str]) -> dict[str, str]:
    """`--run LABEL=CSV|LABEL=mlflow:RUN_ID` options as {label: source}, each source checked."""
    from toolrl.training.publish import MLFLOW_SOURCE

    runs: dict[str, str] = {}
    for item in items:
        label, sep, source = item.partition("=")
        if not sep or not label or not (source.startswith(MLFLOW_SOURCE) or Path(source).is_file()):
            raise UserError(f"--run {item!r}: give LABEL=CSV with an existing CSV file (e.g. grpo=reports/plots/grpo_rewards.csv) "
                            "or LABEL=mlflow:RUN_ID")
        if label in runs:
            raise UserError(f"--run {item!r}: the label {label!r} is given twice; give each run its own label")
        runs[label] = source
    return runs


def _train(stage: str, params_path: Path, overrides: list[str], fresh: bool, dry_run: bool) -> None:
    from toolrl.training import launch
    from toolrl.training.data import TrainingError

    p = load(params_path, overrides)
    if dry_run:
        _dry_run(stage, p, launch.plan(stage, p, params_path, overrides, fresh))
        return
    try:
        result = launch.execute(stage, p, params_path, overrides, fresh,
                                say=lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True))
    except TrainingError as exc:
        raise UserError(str(exc)) from None
    _summary(result)


def _dry_run(stage: str, p, plan) -> None:
    from rich.markup import escape

    from toolrl.hardware import resolve_bf16
    from toolrl.training import launch

    notes = launch.check(stage, p)
    sec = launch.section(p, stage)
    console.print(f"[green]{stage} configuration is valid[/green] (output {sec.output_dir}, {sec.max_steps} steps, "
                  f"lr {sec.learning_rate:g}, bf16 {sec.bf16} -> {resolve_bf16(sec.bf16)})", highlight=False)
    for path, present in launch.inputs(stage, p).items():
        console.print(f"  input {escape(path)}: {'present' if present else 'missing (an earlier stage writes it)'}",
                      highlight=False, soft_wrap=True)
    for note in notes:
        console.print(f"  [yellow]note:[/yellow] {escape(note)}", highlight=False, soft_wrap=True)
    typer.echo(plan.shell())


def _summary(result) -> None:
    from rich.table import Table

    table = Table(title=f"{result.stage}: {'already done' if result.skipped else 'trained'}", show_header=False)
    table.add_row("output", result.output_dir)
    table.add_row("global step", str(result.global_step))
    table.add_row("MLflow run", str(result.run_id))
    table.add_row("model", str(result.model_uri))
    if result.resumed_from:
        table.add_row("resumed from", result.resumed_from)
    for key in ("metrics_file", "plots_file", "plot_png"):
        if getattr(result, key):
            table.add_row(key.replace("_", " "), str(getattr(result, key)))
    console.print(table)
