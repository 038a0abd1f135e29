"""`toolrl data`: curate the training data.

    toolrl data curate [--params params.yaml] [-S data.key=value] [--no-track]

Writes `data.output_dir` ({train,val,test}.jsonl, quarantine.jsonl, duplicates.jsonl, stats.json,
card.md and its PNGs), logs the card to MLflow, and prints the counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from toolrl.cli import ParamsOpt, SetOpt, load

app = typer.Typer(help="Data curation: upstream tool-use datasets -> data/curated.", no_args_is_help=True)
console = Console(stderr=True)


@app.callback()
def _data() -> None:
    """Data curation: upstream tool-use datasets -> data/curated."""


@app.command("curate")
def curate_cmd(
    params: ParamsOpt = Path("params.yaml"),
    set_: SetOpt = None,
    track: Annotated[bool, typer.Option("--track/--no-track", help="log params, counts and card to MLflow")] = True,
) -> None:
    """Read the sources of the `data` section, validate, deduplicate, cap, split, write the card."""
    from toolrl.data.curate import curate

    result = curate(load(params, set_), track=track)
    totals = result.totals
    table = Table(title=f"curated -> {result.output_dir}")
    for col in ("read", "generated", "kept", "quarantined", "duplicates", *result.stats["per_split"]):
        table.add_column(col, justify="right")
    table.add_row(*(str(totals[k]) for k in ("read", "generated", "kept", "quarantined", "duplicates")),
                  *(str(v) for v in result.stats["per_split"].values()))
    console.print(table)
    reasons = result.stats["quarantine_reasons"]
    if reasons:
        console.print("quarantined: " + ", ".join(f"{k}={v}" for k, v in reasons.items())
                      + f" (see {result.files['quarantine']})", soft_wrap=True)
    console.print(f"data card: {result.files['card']}", soft_wrap=True)
