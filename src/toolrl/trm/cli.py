"""`toolrl trm data|train|sizes|compare|score|grpo`: the Tool-call Reward Model's stages and its scorer.

    toolrl trm data                  # trm_data: policy rollouts -> data/trm/{train,val}.jsonl, card, stats
    toolrl trm train                 # trm: train the TRM -> models/trm, metrics, calibration plot
    toolrl trm sizes --sizes 64,256,1024  # the data-requirement study: one TRM per training-set size
    toolrl trm compare --models models/trm,models/trm_new  # paired ROC-AUC on the same held-out calls
    toolrl trm score --model models/trm --input completions.jsonl [--output scores.jsonl]
    toolrl trm grpo                  # grpo_trm: GRPO with turn-level TRM advantages -> models/grpo_trm
    toolrl trm grpo -S trm.grpo.advantage=pooled -S trm.grpo.output_dir=models/grpo_trm_pooled \
        -S trm.grpo.register_as=toolrl-grpo-trm-pooled   # the ablation
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from toolrl.cli import ParamsOpt, SetOpt, UserError, console, load

app = typer.Typer(help="Tool-call Reward Model: build its data, train it, score calls, guide GRPO.",
                  no_args_is_help=True)

FreshOpt = Annotated[bool, typer.Option("--fresh", help="start over, ignoring checkpoints in the output folder")]


def _user_errors(fn):
    """The TRM code raises ValueError for what a user fixes (bad data, bad params), the training
    package TrainingError: print them as one line, exit 2 (ConfigError is main's already)."""
    import functools

    from toolrl.config import ConfigError
    from toolrl.training.data import TrainingError

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ConfigError:
            raise
        except (ValueError, TrainingError) as exc:
            raise UserError(str(exc)) from None

    return wrapper


@app.command("data")
@_user_errors
def data(params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None) -> None:
    """trm_data: sample from the policy, label each call, add hard negatives -> trm.data.output_dir."""
    from toolrl.trm.data import run_trm_data

    p = load(params, set_)
    stats = run_trm_data(p, say=lambda m: console.print(m, highlight=False, markup=False))
    console.print(f"[green]wrote {p.trm.data.output_dir}[/green]: train {stats['train/records']} "
                  f"({stats['train/positive_fraction']:.0%} positive), val {stats['val/records']}, "
                  f"quarantined {stats['quarantined']}", highlight=False)


@app.command("train")
@_user_errors
def train(params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None, fresh: FreshOpt = False) -> None:
    """trm: train the classifier on trm.data.output_dir -> trm.model.output_dir (registered toolrl-trm)."""
    from toolrl.trm.trainer import run_trm

    p = load(params, set_)
    result = run_trm(p, fresh=fresh, say=lambda m: console.print(m, highlight=False, markup=False))
    val = result.metrics.get("val", {})
    console.print(f"[green]TRM in {result.output_dir}[/green]: val accuracy {val.get('accuracy', 0):.3f}, "
                  f"F1 {val.get('f1', 0):.3f}, ROC-AUC {val.get('roc_auc', 0):.3f}, rule agreement "
                  f"{result.metrics.get('rule_agreement', float('nan')):.3f} (run {result.run_id})",
                  highlight=False)


@app.command("sizes")
@_user_errors
def sizes(
    sizes_: Annotated[str, typer.Option("--sizes", help="comma-separated training-set sizes (records)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="folder for the runs and the table")] = Path(
        "reports/trm_data_requirement"),
    epochs: Annotated[float | None, typer.Option(
        "--epochs", help="train each size for this many passes over its records, evaluated once at the end "
        "(default: trm.model.max_steps for every size)")] = None,
    params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None,
) -> None:
    """The TRM's data requirement: train it on several training-set sizes -> a table of held-out ROC-AUC
    (95 % interval), calibration error and F1 per size."""
    from toolrl.trm.requirement import data_requirement

    try:
        wanted = [int(x) for x in sizes_.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--sizes takes whole numbers separated by commas, got {sizes_!r}") from None
    data_requirement(load(params, set_), wanted, output, epochs, say=lambda m: console.print(m, highlight=False, markup=False))
    console.print(f"[green]wrote {output}/data_requirement.md[/green]", highlight=False)


@app.command("compare")
@_user_errors
def compare(
    models: Annotated[str, typer.Option("--models", help="comma-separated TRM folders; the first is the reference")],
    output: Annotated[Path, typer.Option("--output", "-o", help="folder for the table and scores")] = Path(
        "reports/trm_compare"),
    params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None,
) -> None:
    """TRMs on the same held-out calls: ROC-AUC (95 % interval) of each, and each one's paired difference to
    the first (95 % bootstrap interval over calls) -> compare.md, compare.csv, scores.jsonl."""
    from toolrl.trm.compare import compare_trms
    from toolrl.trm.model import META_FILE

    folders = [m.strip() for m in models.split(",") if m.strip()]
    for folder in folders:
        if not (Path(folder) / META_FILE).exists():
            raise UserError(f"{folder} is not a trained TRM (no trm.json): give folders written by `toolrl trm train`")
    compare_trms(load(params, set_), folders, output, say=lambda m: console.print(m, highlight=False, markup=False))
    console.print((output / "compare.md").read_text(encoding="utf-8"), highlight=False, markup=False)


@app.command("score")
@_user_errors
def score(
    model: Annotated[Path, typer.Option("--model", "-m", help="a TRM folder (models/trm)")] = Path("models/trm"),
    input_: Annotated[Path, typer.Option("--input", "-i", help="jsonl rows with prompt (or tools + conversation) "
                                         "and completion")] = ...,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="jsonl out (default: stdout)")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="calls per forward pass")] = 8,
) -> None:
    """Score every tool call of each completion: one row out per row in, `calls: [{index, call, score, good}]`."""
    from toolrl.trm.score import score_file

    if output is None:
        counts = score_file(model, input_, sys.stdout, batch_size)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("w", encoding="utf-8") as fh:
            counts = score_file(model, input_, fh, batch_size)
    console.print(json.dumps(counts), highlight=False)


@app.command("grpo")
@_user_errors
def grpo(params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None, fresh: FreshOpt = False) -> None:
    """grpo_trm: GRPO (grpo section's init, budget and launch) with the TRM's call advantages -> trm.grpo.output_dir."""
    from toolrl.training.launch import execute

    p = load(params, set_)
    result = execute("grpo_trm", p, params, set_ or [], fresh,
                     say=lambda m: console.print(m, highlight=False, markup=False))
    console.print(f"[green]{result.stage} model in {result.output_dir}[/green] after {result.global_step} steps "
                  f"(run {result.run_id})", highlight=False)
