"""`toolrl reward`: score completions from a JSONL file, list the variants.

    toolrl reward score --input IN.jsonl --output OUT.jsonl [--params params.yaml] [-S key=value]

Each input line holds `completion` (text, or chat messages), `ground_truth`, and optionally `variant`
(default: grpo.reward.variant), `step` (default 0) and `tools` (read by the schema variants). Each is
written back with `scores: {total, format, correctness, length}` added. A line that cannot be scored
is reported on stderr with its line number and written back with `scores: null` and an `error`; the
others go on; the exit code is 1 if any line was bad.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column, Table

from toolrl.config import DEFAULT_PARAMS, Params, apply_overrides, load_params, validate
from toolrl.rewards.parsing import GroundTruthError
from toolrl.rewards.registry import VARIANTS, UnknownVariant
from toolrl.rewards.schema import ToolsError
from toolrl.rewards.scorer import Scorer

app = typer.Typer(help="The ToolRL reward: score completions, list variants.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)  # messages, not layout: `file:line:` lines stay whole for grep


class BadLine(ValueError):
    """An input line that cannot be scored; the message says why."""


def _params(path: Path | None, overrides: list[str]) -> Params:
    """params.yaml (or --params), with -S overrides; the defaults when no params file exists and none
    was named, so that scoring works outside a project checkout."""
    if path is None:
        if not DEFAULT_PARAMS.exists():
            return validate(apply_overrides({}, overrides), source="defaults with -S overrides")
        path = DEFAULT_PARAMS
    return load_params(path, overrides)


class LineScorer:
    """Scores one decoded line, one Scorer per variant name."""

    def __init__(self, params: Params):
        self.reward = params.grpo.reward
        self.scorers: dict[str, Scorer] = {}

    def __call__(self, record: Any) -> dict[str, float]:
        if not isinstance(record, dict):
            raise BadLine(f"a line must be a JSON object, got {type(record).__name__}")
        missing = [k for k in ("completion", "ground_truth") if k not in record]
        if missing:
            raise BadLine(f"missing field(s) {', '.join(missing)}")
        completion, gt = record["completion"], record["ground_truth"]
        if not isinstance(completion, (str, list)):
            raise BadLine("completion must be a string or a list of chat messages")
        if not isinstance(gt, str):
            raise BadLine("ground_truth must be a string")
        variant = record.get("variant") or self.reward.variant
        step = record.get("step", 0)
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise BadLine(f"step must be a non-negative integer, got {step!r}")
        scorer = self.scorers.get(variant)
        if scorer is None:
            try:
                scorer = self.scorers[variant] = Scorer(variant, self.reward)
            except UnknownVariant as exc:
                raise BadLine(str(exc)) from None
        try:
            return scorer(completion, gt, step, record.get("tools"))._asdict()
        except (GroundTruthError, ToolsError, TypeError) as exc:
            raise BadLine(str(exc)) from None


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


@app.command("score")
def score_cmd(
    input: Annotated[Path, typer.Option("--input", "-i", help="JSONL with completion, ground_truth[, variant, step, tools]")],
    output: Annotated[Path, typer.Option("--output", "-o", help="JSONL written with `scores` added to each line")],
    params: Annotated[Path | None, typer.Option("--params", "-p", help="params file (default params.yaml if present)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", "-S", help="override a param: key.sub=value")] = None,
) -> None:
    """Score each line's completion against its ground truth; bad lines are reported and kept."""
    if not input.exists():
        raise FileNotFoundError(f"input file {input} not found: pass --input with a JSONL file")
    score_line = LineScorer(_params(params, set_ or []))
    output.parent.mkdir(parents=True, exist_ok=True)
    total, good, bad = _count_lines(input), 0, 0
    columns = (TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with (
        input.open(encoding="utf-8", errors="replace") as src,
        output.open("w", encoding="utf-8") as dst,
        Progress(*columns, console=console, transient=True) as progress,
    ):
        task = progress.add_task("score", total=total)
        for n, line in enumerate(src, start=1):
            progress.advance(task)
            if not line.strip():
                continue  # blank lines carry no record
            try:
                record = json.loads(line)
            except ValueError as exc:
                record, error = {"line": n, "raw": line.rstrip("\n")}, f"not valid JSON: {exc}"
            else:
                try:
                    scores = score_line(record)
                    error = None
                except BadLine as exc:
                    error = str(exc)
                if not isinstance(record, dict):
                    record = {"line": n, "raw": record}
            if error is None:
                good += 1
                record["scores"] = scores
            else:
                bad += 1
                record["scores"], record["error"] = None, error
                console.print(f"[yellow]{escape(str(input))}:{n}:[/yellow] {escape(error)}", highlight=False)
            dst.write(json.dumps(record, ensure_ascii=False) + "\n")
    console.print(f"scored {good} line(s) into {output}" + (f"; {bad} bad line(s), see above" if bad else ""))
    if bad:
        raise typer.Exit(1)


@app.command("variants")
def variants_cmd() -> None:
    """List the reward variants with their default ranges at step 0."""
    # a variant's name is what the user types: never cropped; the description wraps instead
    table = Table(Column("variant", no_wrap=True), "format", "correctness", "length", "what it changes")
    for name, v in VARIANTS.items():
        r = Scorer(name).ranges(0)
        show = lambda rng: f"[{rng.min:g}, {rng.max:g}]" if rng else "-"  # noqa: E731
        table.add_row(name + ("" if v.reference else " *"), show(r.format), show(r.correctness), show(r.length),
                      v.summary)
    Console().print(table)
    Console().print("* beyond the reference scorer; ranges are at step 0 (schedules move them, see docs/REWARDS.md)")

