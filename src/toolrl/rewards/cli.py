"""`toolrl reward`: score completions or multi-turn trajectories from a JSONL file, list the variants.

    toolrl reward score --input IN.jsonl --output OUT.jsonl [--params params.yaml] [-S key=value]
    toolrl reward trajectories --input TRAJ.jsonl [--output OUT.jsonl] [--reward outcome_dense] [--step N]
    toolrl reward agreement --samples 'mlartifacts/*/artifacts/samples/grpo_step_*.json' [--variants a,b] [--group-size 4]

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

app = typer.Typer(help="The ToolRL reward: score completions or multi-turn trajectories, list variants.",
                  no_args_is_help=True)
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


@app.command("trajectories")
def trajectories_cmd(
    input: Annotated[Path, typer.Option("--input", "-i", help="JSONL of multi-turn trajectories (Trajectory.to_dict)")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="JSONL written with `scores` added to each line")] = None,
    reward: Annotated[str | None, typer.Option("--reward", "-r", help="multi-turn reward (default grpo.reward.multi_turn)")] = None,
    step: Annotated[int, typer.Option("--step", help="training step for the variant's schedules", min=0)] = 0,
    params: Annotated[Path | None, typer.Option("--params", "-p", help="params file (default params.yaml if present)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", "-S", help="override a param: key.sub=value")] = None,
) -> None:
    """Score multi-turn trajectories: BFCL's multi-turn checker (outcome) and ToolRL's format and
    correctness per message and turn (dense); a table per trajectory, then a summary."""
    from toolrl.rewards.multi_turn import TrajectoryScorer

    if not input.exists():
        raise FileNotFoundError(f"input file {input} not found: pass --input with a JSONL file of trajectories")
    try:
        scorer = TrajectoryScorer(reward, _params(params, set_ or []).grpo.reward)
    except UnknownVariant as exc:
        raise typer.BadParameter(str(exc), param_hint="--reward") from None
    rows, records, bad = [], [], 0
    for n, line in enumerate(input.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            record, error = {"line": n, "raw": line}, f"not valid JSON: {exc}"
        else:
            try:
                if not isinstance(record, dict):
                    raise ValueError(f"a line must be a JSON object (a trajectory), got {type(record).__name__}")
                scores, error = scorer(record, step), None
            except (ValueError, TypeError, AttributeError) as exc:  # a malformed record: said, with its line
                error = str(exc)
        if error is None:
            rows.append((record["case_id"], scores))
            records.append({**record, "scores": scores.as_dict()})
        else:
            bad += 1
            console.print(f"[yellow]{escape(str(input))}:{n}:[/yellow] {escape(error)}", highlight=False)
            records.append({**(record if isinstance(record, dict) else {"line": n, "raw": record}),
                            "scores": None, "error": error})
    _trajectory_table(rows, scorer)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    if bad:
        console.print(f"{bad} bad line(s), see above")
        raise typer.Exit(1)


def _trajectory_table(rows: list, scorer: Any) -> None:
    """Per trajectory its terms, then the means, the checker's pass rate and crashes."""
    out = Console(soft_wrap=True)
    table = Table(Column("case", no_wrap=True), "total", *scorer.components, "checker")
    for case_id, s in rows:
        checker = "-" if not scorer.reward.outcome else ("pass" if s.error is None else s.error)
        table.add_row(case_id, f"{s.total:.3f}", *(f"{getattr(s, c):.3f}" for c in scorer.components), checker)
    out.print(table)
    if not rows:
        out.print("no trajectory scored")
        return
    means = {c: sum(getattr(s, c) for _, s in rows) / len(rows) for c in ("total", *scorer.components)}
    line = f"{len(rows)} trajectories, reward {scorer.reward.name} (variant {scorer.scorer.variant.name}): " + ", ".join(
        f"mean {c} {v:.3f}" for c, v in means.items())
    if scorer.reward.outcome:
        passed = sum(s.error is None for _, s in rows)
        line += f"; checker passed {passed}/{len(rows)}; checker errors {scorer.checker_errors}"
    out.print(line)


@app.command("agreement")
def agreement_cmd(
    samples: Annotated[list[str], typer.Option("--samples", help="GRPO sample tables (MLflow's samples/grpo_step_*.json); "
                                                "globs allowed, repeatable")],
    variants: Annotated[str, typer.Option("--variants", help="comma-separated; default: every variant that reads "
                                          "no tool schema")] = "",
    reference: Annotated[str, typer.Option("--reference", help="the variant the others are compared with")] = "default",
    group_size: Annotated[int | None, typer.Option("--group-size", help="the run's grpo.num_generations; default: "
                                                   "params.yaml's", min=2)] = None,
) -> None:
    """How far each reward variant changes GRPO's advantages on groups a run logged (docs/REWARDS.md)."""
    import glob

    from toolrl.cli import UserError
    from toolrl.rewards.agreement import (
        SAME_TOLERANCE,
        SampleTableError,
        compare_variants,
        read_groups,
        readable_without_tools,
    )

    group_size = group_size or _params(None, []).grpo.num_generations
    paths = sorted({Path(f) for pattern in samples for f in (glob.glob(pattern) or [pattern])})
    absent = [str(p) for p in paths if not p.exists()]
    if absent:
        raise UserError(f"no sample table at {', '.join(absent)}: pass --samples with files or a glob that matches "
                        "some (an MLflow run's artifacts/samples/grpo_step_*.json)")
    names = [v for v in variants.split(",") if v] or [n for n in VARIANTS if readable_without_tools(n)]
    unknown = [n for n in [reference, *names] if n not in VARIANTS]
    if unknown:
        raise UserError(f"unknown variant {', '.join(unknown)}: `toolrl reward variants` lists them")
    try:
        groups = read_groups(paths, group_size)
        rows = compare_variants(groups, names, reference)
    except (SampleTableError, ValueError) as exc:
        raise UserError(str(exc)) from None
    table = Table(Column("variant", no_wrap=True), "silent groups", f"advantages = {reference}'s", "both vary",
                  "correlation mean (min)", "same direction", title=f"{len(groups)} groups of {group_size} from "
                  f"{len(paths)} sample tables")
    for r in rows:
        table.add_row(r.variant, f"{r.silent} ({r.silent / r.groups:.0%})", f"{r.same} ({r.same / r.groups:.0%})",
                      str(r.both_vary), f"{r.mean_correlation:.3f} ({r.min_correlation:.3f})", f"{r.same_sign:.1%}")
    Console().print(table)
    Console().print(f"silent: every completion of the group got the same reward (no learning signal); advantages: "
                    f"GRPO's group normalisation of the variant's total reward, equal when every completion's is within "
                    f"{SAME_TOLERANCE}; correlation and same direction (the advantage's sign) over groups where both vary")


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

