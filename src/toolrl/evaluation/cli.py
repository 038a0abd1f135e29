"""`toolrl eval`: score models on BFCL and API-Bank and write the side-by-side report.

    toolrl eval --models base,sft,grpo --benchmarks bfcl,api_bank --limit 50

The options are shortcuts for `--set evaluate.<key>=...`; everything else comes from params.yaml.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from toolrl.cli import ParamsOpt, SetOpt, UserError, console, load

app = typer.Typer(help="Evaluate models on BFCL and API-Bank, side by side.", invoke_without_command=True,
                  no_args_is_help=False)


def _items(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _arms(text: str) -> dict[str, list[str]]:
    """`grpo=models/grpo_s0,models/grpo_s1;sft=models/sft` -> {"grpo": [...], "sft": [...]}."""
    arms: dict[str, list[str]] = {}
    for part in (p.strip() for p in text.split(";") if p.strip()):
        name, sep, members = part.partition("=")
        if not sep or not name.strip() or not _items(members):
            raise UserError(f"--arms: {part!r} is not NAME=MODEL,MODEL,...; arms are separated by ';', e.g. "
                            "--arms 'grpo=models/grpo_s0,models/grpo_s1;grpo_trm=models/trm_s0,models/trm_s1'")
        if name.strip() in arms:
            raise UserError(f"--arms: the arm {name.strip()!r} is named twice; give each arm one name and list all "
                            "its checkpoints there, e.g. 'grpo=models/grpo_s0,models/grpo_s1'")
        arms[name.strip()] = _items(members)
    return arms


@app.callback(invoke_without_command=True)
def evaluate(
    models: Annotated[str | None, typer.Option(help="comma-separated model references: stage names "
                                               "(base, sft, grpo, grpo_trm), models:/name@alias, hub ids, "
                                               "folders, tiny-random")] = None,
    benchmarks: Annotated[str | None, typer.Option(help="comma-separated: bfcl, api_bank")] = None,
    limit: Annotated[int | None, typer.Option(help="cases per category / level, drawn with evaluate.seed")] = None,
    categories: Annotated[str | None, typer.Option("--bfcl-categories", help="comma-separated BFCL "
                                                   "categories")] = None,
    api_bank: Annotated[str | None, typer.Option("--api-bank", help="comma-separated API-Bank level files "
                                                 "(ToolRL's processed JSON)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="generation batch size")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="completion length cap")] = None,
    arms: Annotated[str | None, typer.Option(help="training methods over seeds: NAME=MODEL,MODEL;NAME=MODEL,... "
                                             "(models listed here join --models when it is not given)")] = None,
    backend: Annotated[str | None, typer.Option(help="auto (the default: openvino where it applies, else hf), hf (CPU/GPU, the reference), openvino (CPU, ~2x) or vllm (GPU)")] = None,
    output_dir: Annotated[Path | None, typer.Option(help="where the report goes")] = None,
    params: ParamsOpt = Path("params.yaml"),
    set_: SetOpt = None,
) -> None:
    """Score the models, write reports/eval.{md,csv}, plots and metrics.json, log to MLflow."""
    overrides = list(set_ or [])
    if arms is not None:
        methods = _arms(arms)
        overrides.append(f"evaluate.arms={json.dumps(methods)}")
        if models is None:
            # each model once: a model in two arms is then reported as such (the schema's check), not as a
            # model listed twice
            models = ",".join(dict.fromkeys(m for members in methods.values() for m in members))
    for key, value in (("models", models), ("benchmarks", benchmarks), ("bfcl_categories", categories),
                       ("api_bank_paths", api_bank)):
        if value is not None:
            overrides.append(f"evaluate.{key}={json.dumps(_items(value))}")
    for key, value in (("limit", limit), ("batch_size", batch_size), ("max_new_tokens", max_new_tokens),
                       ("backend", backend), ("output_dir", output_dir)):
        if value is not None:
            overrides.append(f"evaluate.{key}={json.dumps(str(value) if isinstance(value, Path) else value)}")
    p = load(params, overrides)

    from toolrl.evaluation.bfcl import CheckerBroken
    from toolrl.evaluation.stage import run_evaluation

    try:
        out = run_evaluation(p)
    except CheckerBroken as exc:
        raise UserError(str(exc)) from None
    typer.echo(out.table_markdown)
    for warning in out.results.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)
    console.print(f"generated {out.results.generated} new completions; report in "
                  f"[bold]{out.files['markdown']}[/bold]; MLflow run {out.run_id}", highlight=False, soft_wrap=True)
