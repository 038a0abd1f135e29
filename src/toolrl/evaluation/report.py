"""The side-by-side report: every model's accuracy per benchmark category, in files a person, DVC and
MLflow can read.

Written to `evaluate.output_dir`:
- `eval.md`: accuracy table (rows: models; columns: categories and overall), models and their
  hashes, warnings, error-category counts, example failures, plots;
- `eval.csv`: the accuracy table as numbers (fractions);
- `eval_intervals.csv`: every accuracy with its 95 % interval (Wilson for a category and for the
  pooled overall; for the mean of categories, a bootstrap within categories, widened to Wilson's interval when a
  category is at 0 or 100 %: `toolrl.evaluation.stats`);
- `eval_pairs.csv`: every pair of models on every category and overall: the paired difference, its
  95 % bootstrap interval (widened to Newcombe's score interval where a category adds no variance to the
  bootstrap: the `interval` column), McNemar's exact p-value, whether the difference is called (also after
  Holm's adjustment), and the smallest difference these cases detect at 80 % power at the pair's
  disagreement rate;
- `eval_arms.csv`: with `evaluate.arms`, every pair of training methods, each a set of checkpoints
  trained alike but for the seed, on every category and overall: the difference of their mean scores
  with Welch's t interval over seeds and cases (`toolrl.evaluation.stats.compare_arms`), and whether it is
  called (also after Holm's adjustment); without arms its header alone (it is a DVC output, and an
  earlier run's methods must not stay beside this report);
- in `eval.md`, a power line per benchmark: the smallest paired difference its cases detect at 80 %
  power, at each pair's observed disagreement rate and at an assumed one (`power`);
- `metrics.json`: `{model: {benchmark: {category: acc, overall: acc, overall_weighted: acc}}}` for
  `dvc metrics diff`;
- `eval_examples.jsonl`: every graded case (model, case, correct, error, completion; a multi-turn
  case also its trajectory, and as completion a compact reading of the conversation);
- `eval_plots/eval_overall.png` and `eval_plots/eval_<benchmark>_<category>.png` (a folder of its own,
  so DVC tracks every plot as the stage's output).

Weighting: a benchmark's `overall` is the unweighted mean of its categories (levels), as BFCL's
summary averages its categories; `overall_weighted` pools all its cases (example-weighted).
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolrl.config import EvaluateParams
from toolrl.evaluation.records import ERROR_CATEGORIES
from toolrl.evaluation.runner import Column, EvalResults, ModelResult
from toolrl.evaluation.stats import (
    ASSUMED_DISAGREEMENT,
    ArmComparison,
    PairedComparison,
    adds_no_variance,
    adjust_for_multiplicity,
    compare,
    compare_arms,
    min_detectable_difference,
    paired_bootstrap,
    stdev,
    wilson,
)

OVERALL, WEIGHTED = "overall", "overall_weighted"
WEIGHTING_NOTE = (
    "`overall` is the unweighted mean of a benchmark's categories (as BFCL's summary averages its "
    "categories); `overall_weighted` pools all of its cases (example-weighted)."
)


def benchmarks(results: EvalResults) -> list[str]:
    return list(dict.fromkeys(b for b, _ in results.columns))


def overall(model: ModelResult, results: EvalResults, benchmark: str) -> tuple[float | None, float | None]:
    """(unweighted mean of categories, example-weighted accuracy) of one benchmark."""
    cols = [c for c in results.columns if c[0] == benchmark and model.graded.get(c)]
    if not cols:
        return None, None
    mean = sum(model.accuracy(c) for c in cols) / len(cols)
    rows = [g for c in cols for g in model.graded[c]]
    return mean, sum(g.grade.correct for g in rows) / len(rows)


def table(results: EvalResults) -> tuple[list[str], list[list[Any]]]:
    """Header and rows (model label, then fractions) of the accuracy table."""
    header = ["model"]
    for bench in benchmarks(results):
        header += [f"{b}/{c}" for b, c in results.columns if b == bench]
        header += [f"{bench}/{OVERALL}", f"{bench}/{WEIGHTED}"]
    rows = []
    for model in results.models:
        row: list[Any] = [model.label]
        for bench in benchmarks(results):
            row += [model.accuracy(c) for c in results.columns if c[0] == bench]
            row += list(overall(model, results, bench))
        rows.append(row)
    return header, rows


def _outcomes(model: ModelResult, col: Column) -> dict[str, bool]:
    return {g.example.id: bool(g.grade.correct) for g in model.graded.get(col, [])}


def intervals(results: EvalResults) -> list[dict[str, Any]]:
    """Every model's accuracy per category and overall, with its 95 % interval."""
    rows = []
    for model in results.models:
        for bench in benchmarks(results):
            cols = [c for c in results.columns if c[0] == bench and model.graded.get(c)]
            for col in cols:
                outcomes = list(_outcomes(model, col).values())
                rows.append({"model": model.label, "scope": f"{bench}/{col[1]}", "n": len(outcomes),
                             "accuracy": sum(outcomes) / len(outcomes), "method": "wilson",
                             **dict(zip(("low", "high"), wilson(sum(outcomes), len(outcomes)), strict=True))})
            if not cols:
                continue
            mean, weighted = overall(model, results, bench)
            # the mean of categories: a bootstrap within each category (against a model that is never right)
            strata = {c[1]: (list(_outcomes(model, c).values()), [False] * len(model.graded[c])) for c in cols}
            _, low, high = paired_bootstrap(strata)
            n = sum(len(model.graded[c]) for c in cols)
            # A category at 0 or 100 % adds no variance to a bootstrap (every resample is the same), so the
            # interval shrinks to [0, 0] when every case is wrong and covers badly near 0 and 100 %: the failure
            # Wilson's interval is for. There, take the union with Wilson's at the mean on the n cases.
            method = "bootstrap within categories"
            if any(adds_no_variance(*strata[c]) for c in strata):
                w_low, w_high = wilson(round(mean * n), n)
                low, high, method = min(low, w_low), max(high, w_high), f"{method}, widened to Wilson's"
            rows.append({"model": model.label, "scope": f"{bench}/{OVERALL}", "n": n, "accuracy": mean,
                         "method": method, "low": low, "high": high})
            correct = round(weighted * n)
            rows.append({"model": model.label, "scope": f"{bench}/{WEIGHTED}", "n": n, "accuracy": weighted,
                         "method": "wilson", **dict(zip(("low", "high"), wilson(correct, n), strict=True))})
    return rows


def comparisons(results: EvalResults) -> list[PairedComparison]:
    """Every pair of models (in the order evaluated) on each category and each benchmark's overall,
    over the cases both answered."""
    out = []
    models = results.models
    for i, a in enumerate(models):
        for b in models[i + 1:]:
            for bench in benchmarks(results):
                strata = {}
                for col in (c for c in results.columns if c[0] == bench):
                    oa, ob = _outcomes(a, col), _outcomes(b, col)
                    ids = sorted(oa.keys() & ob.keys())
                    if ids:
                        strata[col[1]] = ([oa[k] for k in ids], [ob[k] for k in ids])
                        out.append(compare(a.label, b.label, f"{bench}/{col[1]}", {col[1]: strata[col[1]]}))
                if strata:
                    out.append(compare(a.label, b.label, f"{bench}/{OVERALL}", strata))
    adjust_for_multiplicity(out, OVERALL)
    return out


def arm_members(results: EvalResults, arms: dict[str, list[str]]) -> tuple[dict[str, list[ModelResult]], list[str]]:
    """Each arm's evaluated checkpoints, and a warning for each arm that lost one (a model skipped)."""
    by_label = {m.label: m for m in results.models}
    present, warnings = {}, []
    for arm, members in arms.items():
        present[arm] = [by_label[m] for m in members if m in by_label]
        missing = [m for m in members if m not in by_label]
        if missing:
            warnings.append(f"arm {arm}: {', '.join(missing)} not evaluated (see the warnings), so {len(present[arm])} "
                            f"of its {len(members)} checkpoints are compared.")
    return present, warnings


def arm_comparisons(results: EvalResults, arms: dict[str, list[str]]) -> tuple[list[ArmComparison], list[str]]:
    """Every pair of arms (training methods, `evaluate.arms`) on each category and each benchmark's overall,
    over the cases every checkpoint of both arms answered; and what kept an arm or a pair out."""
    present, warnings = arm_members(results, arms)
    names = [a for a in arms if present[a]]
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if len(present[a]) < 2 and len(present[b]) < 2:
                warnings.append(f"arms {a} and {b} have one checkpoint each: compared as checkpoints above, not as "
                                "methods")
                continue
            models = present[a] + present[b]
            for bench in benchmarks(results):
                cats: dict[str, list[list[bool]]] = {}  # category -> each model's outcomes on the common cases
                for col in (c for c in results.columns if c[0] == bench):
                    outcomes = [_outcomes(m, col) for m in models]
                    ids = sorted(set.intersection(*(set(o) for o in outcomes)))
                    if ids:
                        cats[col[1]] = [[o[k] for k in ids] for o in outcomes]
                if not cats:
                    continue
                split = len(present[a])
                arm_a = [{c: rows[j] for c, rows in cats.items()} for j in range(split)]
                arm_b = [{c: rows[j] for c, rows in cats.items()} for j in range(split, len(models))]
                for c in cats:
                    out.append(compare_arms(a, b, f"{bench}/{c}", [{c: m[c]} for m in arm_a],
                                            [{c: m[c]} for m in arm_b]))
                out.append(compare_arms(a, b, f"{bench}/{OVERALL}", arm_a, arm_b))
    adjust_for_multiplicity(out, OVERALL)
    return out, warnings


def arm_rows(results: EvalResults, arms: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Per arm and benchmark: its checkpoints' overall scores, their mean and standard deviation."""
    present, _ = arm_members(results, arms)
    rows = []
    for arm, models in present.items():
        for bench in benchmarks(results):
            scores = {m.label: overall(m, results, bench)[0] for m in models}
            scores = {k: v for k, v in scores.items() if v is not None}
            if scores:
                values = list(scores.values())
                rows.append({"arm": arm, "benchmark": bench, "scores": scores,
                             "mean": sum(values) / len(values), "sd": stdev(values)})
    return rows


def power(results: EvalResults, pairs: list[PairedComparison]) -> list[dict[str, Any]]:
    """Per benchmark: its cases per category and in all, the smallest paired difference they detect at
    80 % power at ASSUMED_DISAGREEMENT (over all cases, and within its smallest category), and the
    pairs of models compared on its overall, each with its own observed disagreement rate."""
    rows = []
    for bench in benchmarks(results):
        sizes = [results.sizes[c] for c in results.columns if c[0] == bench and results.sizes[c]]  # empty: no column
        if not sum(sizes):
            continue
        rows.append({"benchmark": bench, "sizes": sizes, "n": sum(sizes),
                     "assumed": min_detectable_difference(sum(sizes), ASSUMED_DISAGREEMENT),
                     "assumed_category": min_detectable_difference(min(sizes), ASSUMED_DISAGREEMENT),
                     "pairs": [c for c in pairs if c.scope == f"{bench}/{OVERALL}"]})
    return rows


@dataclass
class Uncertainty:
    """Intervals, pairwise and method comparisons, computed once per evaluation (`uncertainty`)."""

    intervals: list[dict[str, Any]]
    pairs: list[PairedComparison]
    arms: list[dict[str, Any]] = field(default_factory=list)  # arm_rows
    arm_pairs: list[ArmComparison] = field(default_factory=list)
    arm_warnings: list[str] = field(default_factory=list)

    @property
    def shows_arms(self) -> bool:
        """Whether the report has a methods section: arms to show, or warnings about arms that lost checkpoints."""
        return bool(self.arms or self.arm_warnings)


def metrics_tree(results: EvalResults) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for model in results.models:
        node: dict[str, Any] = {}
        for bench in benchmarks(results):
            sub = {cat: _round(model.accuracy((b, cat))) for b, cat in results.columns if b == bench}
            mean, weighted = overall(model, results, bench)
            sub[OVERALL], sub[WEIGHTED] = _round(mean), _round(weighted)
            node[bench] = sub
        stats = conversation_stats(model)
        if stats is not None:
            node[CONVERSATIONS] = {k: _round(v) for k, v in stats.items()}
        tree[model.label] = node
    return tree


CONVERSATIONS = "conversations"  # metrics.json / MLflow key of the multi-turn behaviour per model


def conversation_stats(model: ModelResult) -> dict[str, float] | None:
    """What a model's multi-turn conversations did (`multiturn.trajectory.summary`: calls, messages and
    completed turns per conversation, stop reasons), or None when it had none: accuracy alone does not
    say whether a model that fails calls too little, too much, or writes what cannot be parsed."""
    from toolrl.multiturn.trajectory import Trajectory, summary

    done = [Trajectory.from_dict(g.trajectory) for rows in model.graded.values() for g in rows
            if g.trajectory is not None]
    return {"conversations": float(len(done)), **summary(done)} if done else None


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def metric_key(label: str) -> str:
    """A model label as an MLflow metric name part (letters, digits, `_ - .` only)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._") or "model"


def error_counts(model: ModelResult) -> Counter:
    return Counter(g.grade.error for rows in model.graded.values() for g in rows if not g.grade.correct)


def failures(model: ModelResult, n: int) -> list[tuple[Column, Any]]:
    """Up to n failures, one category after another, so different kinds of case show up."""
    queues = {c: [g for g in rows if not g.grade.correct] for c, rows in model.graded.items()}
    picked: list[tuple[Column, Any]] = []
    while len(picked) < n and any(queues.values()):
        for col, queue in queues.items():
            if queue and len(picked) < n:
                picked.append((col, queue.pop(0)))
    return picked


# ---------------------------------------------------------------- markdown


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def accuracy_markdown(results: EvalResults) -> str:
    """The accuracy table (percent) with case counts; also the Prefect artifact's body."""
    header, rows = table(results)
    sizes = {f"{b}/{c}": results.sizes[(b, c)] for b, c in results.columns}
    for bench in benchmarks(results):
        n = sum(results.sizes[c] for c in results.columns if c[0] == bench)
        sizes[f"{bench}/{OVERALL}"] = sizes[f"{bench}/{WEIGHTED}"] = n
    shown = [header[0]] + [f"{h} (n={sizes[h]})" for h in header[1:]]
    body = [[row[0]] + [_pct(x) for x in row[1:]] for row in rows]
    if not rows:
        return "No model was evaluated (see the warnings)."
    return _md_table(shown, body) + "\n\nAccuracy in percent. " + WEIGHTING_NOTE


def uncertainty_markdown(ci_rows: list[dict[str, Any]], pairs: list[PairedComparison]) -> str:
    """Each benchmark's overall with its interval (`intervals`), then every pair of models
    (`comparisons`) in words: a difference is called only when its 95 % interval excludes 0 and McNemar's
    exact test agrees (`PairedComparison.called`)."""
    rows = [[r["model"], r["scope"], str(r["n"]), _pct(r["accuracy"]), f"[{_pct(r['low'])}, {_pct(r['high'])}]"]
            for r in ci_rows if r["scope"].endswith(f"/{OVERALL}")]
    if not rows:
        return "No model was evaluated."
    text = _md_table(["model", "scope", "cases", "accuracy (%)", "95 % interval"], rows)
    every = len(pairs)
    pairs = [c for c in pairs if c.scope.endswith(f"/{OVERALL}")]
    if pairs:
        text += "\n\nPaired differences (bootstrap over the same cases, within categories; McNemar's exact test):\n\n"
        text += "\n".join(f"- {c.words()}" for c in pairs)
    called = sum(c.called for c in pairs)
    survive = (f"{sum(c.called_holm for c in pairs)} of the {called} overall calls survive it" if called
               else "no overall difference is called here, so none is left to survive it")
    return text + ("\n\nEvery category and pair: `eval_intervals.csv`, `eval_pairs.csv`. A difference is "
                   "called only when its 95 % interval excludes 0 and McNemar's exact p is below 0.05 in the "
                   f"interval's direction. Each test is at that level on its own: {len(pairs)} overall comparisons "
                   f"here, {every} with the categories, so among models that do not differ some calls are expected "
                   "by chance (about 1 in 20 tests at most). Holm's adjustment over each family (the overall "
                   f"comparisons; the category ones) keeps the chance of any false call at 5 %: {survive} "
                   "(`mcnemar_p_holm`, `called_holm` in `eval_pairs.csv`).")


def arms_markdown(computed: Uncertainty) -> str:
    """Each arm's checkpoints and mean score per benchmark, then every pair of arms on each overall in words."""
    rows = [[r["arm"], r["benchmark"], len(r["scores"]), _pct(r["mean"]),
             "-" if len(r["scores"]) < 2 else f"{100 * r['sd']:.1f}",
             ", ".join(f"{k} {_pct(v)}" for k, v in r["scores"].items())] for r in computed.arms]
    text = _md_table(["arm", "benchmark", "checkpoints", "mean overall (%)", "seed SD (points)", "each checkpoint"],
                     rows)
    overall_pairs = [c for c in computed.arm_pairs if c.scope.endswith(f"/{OVERALL}")]
    if overall_pairs:
        called = sum(c.called for c in overall_pairs)
        survive = (f"{sum(c.called_holm for c in overall_pairs)} of the {called} overall calls survive Holm's "
                   "adjustment over them" if called else "none is called, so none is left for Holm's adjustment")
        text += ("\n\nMethods compared over their seeds (Welch's t over the checkpoints' scores, the standard error "
                 "from the seeds and from the cases; called when p < 0.05):\n\n"
                 + "\n".join(f"- {c.words()}" for c in overall_pairs)
                 + f"\n\nOf these {len(overall_pairs)} comparisons {survive} (`welch_p_holm`, `called_holm` in "
                 "`eval_arms.csv`).")
    text += "".join(f"\n\n- {w}" for w in computed.arm_warnings)
    return text + ("\n\nA paired comparison of two checkpoints (above) tells checkpoints apart, not training methods: "
                   "it holds each model's training fixed. Here the seeds' spread is the noise a method's difference "
                   "has to beat. An arm of one checkpoint is held fixed (the comparison is conditional on it). Every "
                   "category: `eval_arms.csv`.")


def _detectable(mdd: float | None, rate: float) -> str:
    if mdd is not None:
        return f"{100 * mdd:.1f} points"
    return "none (they never disagree)" if rate == 0 else "none (too few cases at this rate)"


def power_markdown(power_rows: list[dict[str, Any]]) -> str:
    """One line per benchmark (`power`): how small a paired difference its cases can show."""
    lines = []
    for row in power_rows:
        low, high = min(row["sizes"]), max(row["sizes"])
        per = f"{low}" if low == high else f"{low} to {high}"
        observed = "; ".join(
            f"{c.a} vs {c.b} (disagree on {100 * (c.only_a + c.only_b) / c.n:.0f} %): "
            f"{_detectable(c.detectable, (c.only_a + c.only_b) / c.n)}" for c in row["pairs"] if c.n)
        assumed = (f"at an assumed {100 * ASSUMED_DISAGREEMENT:.0f} % disagreement rate (assumed, not observed), "
                   f"{_detectable(row['assumed'], ASSUMED_DISAGREEMENT)}, and within one category of "
                   f"{low} cases {_detectable(row['assumed_category'], ASSUMED_DISAGREEMENT)}")
        lines.append(
            f"- {row['benchmark']}: {per} cases per category, {row['n']} in all. The smallest paired difference "
            f"detectable at 80 % power (McNemar, two-sided alpha 0.05) over the {row['n']} cases: "
            + (f"at the disagreement rate observed, {observed}; " if observed else "no pair of models to observe "
               "a disagreement rate; ")
            + assumed + ".")
    if not lines:
        return ""
    return ("Power (Connor's approximation; the table for other sample sizes: docs/EVALUATION.md):\n\n"
            + "\n".join(lines))


def _models_section(results: EvalResults) -> str:
    rows = []
    for m in results.models:
        total = sum(len(v) for v in m.graded.values())
        speed = f"{m.generated / m.generation_seconds:.2f}" if m.generated and m.generation_seconds else "-"
        rows.append([m.label, m.model.source, f"`{m.model.content_hash[:12]}`", m.backend, m.generated,
                     total - m.generated, speed])
    return _md_table(["model", "source", "content hash", "backend", "generated", "cached", "examples/s"], rows)


def _conversations_section(results: EvalResults) -> str:
    stats = {m.label: conversation_stats(m) for m in results.models}
    if not any(stats.values()):
        return ""
    keys = [k for k in next(v for v in stats.values() if v) if k != "conversations"]
    rows = [[label, int(v["conversations"]), *(f"{v[k]:.2f}" for k in keys)] for label, v in stats.items() if v]
    return ("## Conversations (multi-turn)\n\nPer conversation: calls, model messages and user turns the model "
            "completed (its last message in the turn made no call); the share of messages whose call block could "
            "not be parsed; the share of conversations that stopped for each reason.\n\n"
            + _md_table(["model", "conversations", *keys], rows) + "\n")


def _errors_section(results: EvalResults) -> str:
    counts = {m.label: error_counts(m) for m in results.models}
    seen = [e for e in ERROR_CATEGORIES if any(c[e] for c in counts.values())]
    if not seen:
        return "No errors."
    rows = [[label] + [c[e] for e in seen] for label, c in counts.items()]
    legend = "\n".join(f"- `{e}`: {ERROR_CATEGORIES[e]}" for e in seen)
    return _md_table(["model", *seen], rows) + "\n\n" + legend


def _failures_section(results: EvalResults, n: int) -> str:
    parts = []
    for m in results.models:
        picked = failures(m, n)
        if not picked:
            continue
        parts.append(f"### {m.label}\n")
        for (bench, cat), g in picked:
            completion = g.completion.strip()
            room = 600 if g.trajectory is None else 1500  # a conversation's reading: a line per call
            if len(completion) > room:
                completion = completion[:room] + " [...]"
            detail = g.grade.detail.replace("\n", " ")[:300]
            parts.append(f"- `{g.example.id}` ({bench}/{cat}): **{g.grade.error}**: {detail}\n\n"
                         f"  ```text\n{_indent(completion or '(empty completion)')}\n  ```\n")
    return "\n".join(parts) if parts else "No failures."


def _indent(text: str) -> str:
    return "\n".join("  " + line.replace("```", "'''") for line in text.splitlines())


def markdown(results: EvalResults, ev: EvaluateParams, plots: dict[str, Path], out_dir: Path,
             run_id: str | None, computed: Uncertainty) -> str:
    ci_rows, pairs = computed.intervals, computed.pairs
    limit = ev.limit if ev.limit else "all"
    if ev.limit_per_benchmark:
        own = ", ".join(f"{b}: {n or 'all'}" for b, n in ev.limit_per_benchmark.items())
        limit = f"{limit} ({own})"
    lines = [
        "# Evaluation",
        "",
        f"Models: {', '.join(ev.models)}; benchmarks: {', '.join(ev.benchmarks)}; limit: {limit} per "
        f"category (a sample drawn with seed {ev.seed}); backend: {ev.backend}; max_new_tokens: "
        f"{ev.max_new_tokens}; greedy decoding."
        + (f" MLflow run: `{run_id}`." if run_id else ""),
        "",
        *[line for note in results.notes for line in (note, "")],
    ]
    if results.warnings:
        lines += ["## Warnings", "", *[f"- {w}" for w in results.warnings], ""]
    lines += ["## Accuracy", "", accuracy_markdown(results), ""]
    lines += ["## Uncertainty", "", uncertainty_markdown(ci_rows, pairs), "", power_markdown(power(results, pairs)),
              ""]
    if "overall" in plots:
        lines += [f"![overall accuracy]({plots['overall'].relative_to(out_dir).as_posix()})", ""]
    if computed.shows_arms:
        lines += ["## Methods across training seeds", "", arms_markdown(computed), ""]
        if "arms" in plots:
            lines += [f"![methods over seeds]({plots['arms'].relative_to(out_dir).as_posix()})", ""]
    conversations = _conversations_section(results)
    if conversations:
        lines += [conversations]
    lines += ["## Models", "", _models_section(results), "", "## Error categories", "", _errors_section(results),
              "", "## Example failures", "", _failures_section(results, ev.failures_per_model), ""]
    per_category = [(k, p) for k, p in plots.items() if k not in ("overall", "arms")]
    if per_category:
        lines += ["## Per-category plots", ""]
        lines += [f"![{k}]({p.relative_to(out_dir).as_posix()})" for k, p in per_category]
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------- plots


PLOTS_DIR = "eval_plots"  # under evaluate.output_dir; dvc.yaml declares it as the stage's plots


def plot(results: EvalResults, plots_dir: Path, ci_rows: list[dict[str, Any]]) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not results.models:
        return {}
    plots_dir.mkdir(parents=True, exist_ok=True)
    labels = [m.label for m in results.models]
    out: dict[str, Path] = {}

    benches = benchmarks(results)
    ci = {(r["model"], r["scope"]): (r["low"], r["high"]) for r in ci_rows}

    def yerr(label: str, scope: str, value: float) -> list[list[float]]:  # the 95 % interval as error bars
        low, high = ci.get((label, scope), (value / 100, value / 100))
        return [[max(0.0, value - 100 * low)], [max(0.0, 100 * high - value)]]

    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(benches) * len(labels) / 2 + 3), 4))
    width = 0.8 / len(labels)
    for i, model in enumerate(results.models):
        values = [100 * (overall(model, results, b)[0] or 0) for b in benches]
        xs = [j + (i - (len(labels) - 1) / 2) * width for j in range(len(benches))]
        errs = [yerr(model.label, f"{b}/{OVERALL}", v) for b, v in zip(benches, values, strict=True)]
        bars = ax.bar(xs, values, width, label=model.label, capsize=3,
                      yerr=[[e[0][0] for e in errs], [e[1][0] for e in errs]])
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.set_xticks(range(len(benches)), [f"{b} overall" for b in benches])
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title("Overall accuracy (unweighted mean of categories), 95 % intervals")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out["overall"] = plots_dir / "eval_overall.png"
    fig.savefig(out["overall"], dpi=110)
    plt.close(fig)

    for bench, cat in results.columns:
        if not results.sizes[(bench, cat)]:  # no case (an unreadable API-Bank level): no bar, not a 0 % one
            continue
        fig, ax = plt.subplots(figsize=(max(4, 1.0 * len(labels) + 2), 3.2))
        values = [100 * (m.accuracy((bench, cat)) or 0) for m in results.models]
        errs = [yerr(label, f"{bench}/{cat}", v) for label, v in zip(labels, values, strict=True)]
        bars = ax.bar(range(len(labels)), values, color=[f"C{i}" for i in range(len(labels))], capsize=3,
                      yerr=[[e[0][0] for e in errs], [e[1][0] for e in errs]])
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
        ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
        ax.set_ylim(0, 105)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{bench} / {cat} (n={results.sizes[(bench, cat)]})")
        fig.tight_layout()
        key = f"{bench}_{cat}"
        out[key] = plots_dir / f"eval_{key}.png"
        fig.savefig(out[key], dpi=110)
        plt.close(fig)
    return out


def plot_arms(rows: list[dict[str, Any]], plots_dir: Path) -> Path:
    """Each arm's checkpoints (dots) and their mean (a bar) per benchmark: the seeds' spread at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots_dir.mkdir(parents=True, exist_ok=True)
    benches = list(dict.fromkeys(r["benchmark"] for r in rows))
    fig, axes = plt.subplots(1, len(benches), figsize=(max(4.0, 1.2 * len(rows) / len(benches) + 2) * len(benches), 3.6),
                             squeeze=False)
    for ax, bench in zip(axes[0], benches, strict=True):
        arms = [r for r in rows if r["benchmark"] == bench]
        for i, r in enumerate(arms):
            values = [100 * v for v in r["scores"].values()]
            ax.bar(i, 100 * r["mean"], 0.6, color=f"C{i}", alpha=0.35)
            ax.scatter([i] * len(values), values, color=f"C{i}", zorder=3)
        ax.set_xticks(range(len(arms)), [f"{r['arm']} (n={len(r['scores'])})" for r in arms], rotation=20,
                      ha="right", fontsize=8)
        ax.set_ylabel("overall accuracy (%)")
        ax.set_title(f"{bench}: each seed (dots), mean (bar)", fontsize=9)
    fig.tight_layout()
    path = plots_dir / "eval_arms.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- files


def uncertainty(results: EvalResults, arms: dict[str, list[str]] | None = None) -> Uncertainty:
    """Intervals and comparisons, computed once per evaluation: the bootstraps are the costly part, and the
    report, its CSVs, plots and the MLflow metrics all read them."""
    arm_pairs, arm_warnings = arm_comparisons(results, arms or {})
    return Uncertainty(intervals(results), comparisons(results), arm_rows(results, arms or {}), arm_pairs,
                       arm_warnings)


def write(results: EvalResults, ev: EvaluateParams, run_id: str | None = None,
          computed: Uncertainty | None = None) -> dict[str, Path]:
    """Write every report file; returns name -> path."""
    out_dir = Path(ev.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    header, rows = table(results)
    files["csv"] = out_dir / "eval.csv"
    with files["csv"].open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows([[r[0]] + ["" if x is None else f"{x:.4f}" for x in r[1:]] for r in rows])

    computed = computed or uncertainty(results, ev.arms)
    ci_rows, pairs = computed.intervals, computed.pairs
    files["intervals"] = out_dir / "eval_intervals.csv"
    with files["intervals"].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["model", "scope", "n", "accuracy", "low", "high", "method"])
        writer.writeheader()
        writer.writerows([{**r, **{k: f"{r[k]:.4f}" for k in ("accuracy", "low", "high")}} for r in ci_rows])
    files["pairs"] = out_dir / "eval_pairs.csv"
    with files["pairs"].open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["model_a", "model_b", "scope", "n", "diff", "low", "high", "mcnemar_p", "only_a", "only_b",
                         "called", "detectable_at_80pct_power", "mcnemar_p_holm", "holm_family", "called_holm", "interval"])
        writer.writerows([[c.a, c.b, c.scope, c.n, f"{c.diff:.4f}", f"{c.low:.4f}", f"{c.high:.4f}", f"{c.p_value:.4g}",
                           c.only_a, c.only_b, c.called, "" if c.detectable is None else f"{c.detectable:.4f}",
                           "" if c.p_holm is None else f"{c.p_holm:.4g}", c.family, c.called_holm, c.interval]
                          for c in pairs])
    # Written with its header alone where evaluate.arms is empty: the file is a DVC output, and an earlier run's
    # methods must not sit beside this report as if they were its own.
    files["arms"] = out_dir / "eval_arms.csv"
    with files["arms"].open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["arm_a", "arm_b", "scope", "seeds_a", "seeds_b", "cases", "mean_a", "mean_b", "diff", "low",
                         "high", "se_seeds", "se_cases", "df", "welch_p", "called", "detectable_at_80pct_power",
                         "welch_p_holm", "holm_family", "called_holm"])
        writer.writerows([[c.a, c.b, c.scope, len(c.scores_a), len(c.scores_b), c.cases,
                           f"{sum(c.scores_a) / len(c.scores_a):.4f}", f"{sum(c.scores_b) / len(c.scores_b):.4f}",
                           f"{c.diff:.4f}", f"{c.low:.4f}", f"{c.high:.4f}", f"{c.se_seeds:.4f}", f"{c.se_cases:.4f}",
                           f"{c.df:.2f}", f"{c.p_value:.4g}", c.called,
                           "" if c.detectable is None else f"{c.detectable:.4f}",
                           "" if c.p_holm is None else f"{c.p_holm:.4g}", c.family, c.called_holm]
                          for c in computed.arm_pairs])

    files["metrics"] = out_dir / "metrics.json"
    files["metrics"].write_text(json.dumps(metrics_tree(results), indent=2) + "\n")

    files["examples"] = out_dir / "eval_examples.jsonl"
    with files["examples"].open("w", encoding="utf-8") as fh:
        for m in results.models:
            for (bench, cat), graded in m.graded.items():
                for g in graded:
                    row = {"model": m.label, "benchmark": bench, "category": cat, "id": g.example.id,
                           "correct": g.grade.correct, "error": g.grade.error, "detail": g.grade.detail,
                           "completion": g.completion}
                    if g.trajectory is not None:
                        row["trajectory"] = g.trajectory
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")

    plots = plot(results, out_dir / PLOTS_DIR, ci_rows)
    if computed.arms:
        plots["arms"] = plot_arms(computed.arms, out_dir / PLOTS_DIR)
    files.update({f"plot_{k}": p for k, p in plots.items()})
    files["markdown"] = out_dir / "eval.md"
    files["markdown"].write_text(markdown(results, ev, plots, out_dir, run_id, computed))
    return files
