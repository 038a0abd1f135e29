"""The data card: counts per source, per number of calls and per split, quarantine reasons, and
histograms (tools per example, prompt length) as PNG, plus `stats.json` for DVC metrics; for
multi-turn trajectories, the train / evaluation scenario split and turns and calls per trajectory.

Everything here is a pure function of the curation's counts, so the same params give the same bytes
(PNG metadata is stripped of the matplotlib version for the same reason).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from toolrl.data.split import SPLITS
from toolrl.multiturn.trajectory import Trajectory

TOOLS_PNG = "tools_per_example.png"
TOKENS_PNG = "prompt_tokens.png"


def _percentile(values: list[int], q: float) -> int:
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


def length_summary(values: list[int], cap: int) -> dict[str, int]:
    return {"min": min(values, default=0), "median": _percentile(values, 0.5), "p95": _percentile(values, 0.95),
            "max": max(values, default=0), "cap": cap}


def _savefig(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=100, metadata={"Software": None})


def plot_tools(tool_counts: dict[str, list[int]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    top = max((max(v) for v in tool_counts.values() if v), default=1)
    bins = [b - 0.5 for b in range(1, top + 2)]
    ax.hist([tool_counts[s] for s in SPLITS], bins=bins, stacked=True, label=list(SPLITS))
    ax.set_xlabel("tools offered per example")
    ax.set_ylabel("examples")
    ax.set_title("Tools per example")
    ax.legend()
    fig.tight_layout()
    _savefig(fig, path)
    plt.close(fig)


def plot_tokens(lengths: dict[str, list[int]], cap: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist([lengths[s] for s in SPLITS], bins=40, stacked=True, label=list(SPLITS))
    ax.axvline(cap, color="black", linestyle="--", linewidth=1, label=f"cap {cap}")
    ax.set_xlabel("prompt tokens (chat template applied)")
    ax.set_ylabel("examples")
    ax.set_title("Prompt length")
    ax.legend()
    fig.tight_layout()
    _savefig(fig, path)
    plt.close(fig)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render(stats: dict[str, Any], sources: list[dict[str, Any]], examples: dict[str, str]) -> str:
    """The card's markdown. `sources`: how each source was configured; `examples`: one quarantine
    detail per reason, to show what each reason looks like."""
    t = stats["totals"]
    parts = [
        "# Data card: curated tool-call dataset",
        "",
        "Produced by the `curate` stage (`toolrl data curate`, `python -m flows.curate`) from the `data` "
        "section of params.yaml. Every record carries `prompt` + `completion` (SFT view) and `prompt` + "
        "`ground_truth` (RL view) in the ToolRL output format; see docs/DATA.md.",
        "",
        "## Sources",
        "",
        _table(["source", "loader", "location / categories", "limit", "masked names"],
               [[s["tag"], s["name"], s["where"], s["limit"], s["masked"]] for s in sources]),
        "",
        "## Totals",
        "",
        f"{t['read']} upstream records read + {t['generated']} extra examples generated "
        f"({', '.join(['multi-turn', *(k for k in ('composed', 'mismatched') if k in stats)])}) = "
        f"{t['kept']} kept + {t['quarantined']} quarantined + {t['duplicates']} duplicates "
        f"({stats['duplicates']['exact']} exact, {stats['duplicates']['near']} near).",
        "",
        *_composed_lines(stats.get("composed")),
        *_mismatched_lines(stats.get("mismatched")),
        "## Per source",
        "",
        _table(["source", "read", "generated", "kept", "quarantined", "duplicates", *SPLITS],
               [[name, c["read"], c["generated"], c["kept"], c["quarantined"], c["duplicates"],
                 *(c["splits"][s] for s in SPLITS)] for name, c in stats["per_source"].items()]),
        "",
        "## Per number of calls",
        "",
        _table(["calls", *SPLITS, "total"],
               [[k, *(v[s] for s in SPLITS), sum(v.values())] for k, v in stats["per_calls"].items()]),
        "",
        "## Per split",
        "",
        _table(["split", "examples"], [[s, stats["per_split"][s]] for s in SPLITS]),
        "",
        "## Distributions",
        "",
        f"Prompt tokens (kept examples): {json.dumps(stats['prompt_tokens'])}",
        "",
        f"![tools per example]({TOOLS_PNG})",
        "",
        f"![prompt tokens]({TOKENS_PNG})",
        "",
        "## Quarantine reasons",
        "",
    ]
    reasons = stats["quarantine_reasons"]
    if reasons:
        parts.append(_table(["reason", "count", "example"],
                            [[r, n, examples.get(r, "").replace("|", "\\|")[:160]] for r, n in reasons.items()]))
    else:
        parts.append("None: every upstream record became an example.")
    parts += ["", "Quarantined records, with reason, detail and source line/index: `quarantine.jsonl`; "
              "removed duplicates and what they duplicate: `duplicates.jsonl`.", ""]
    return "\n".join(parts)


def _composed_lines(c: dict[str, int] | None) -> list[str]:
    """The totals' note on composed multi-call examples (only when data.compose_multi_call asks for some)."""
    if c is None:
        return []
    sizes = ", ".join(f"{v} of {k.removeprefix('calls_')} calls" for k, v in c.items() if k.startswith("calls_"))
    return [f"Composed multi-call examples (`data.compose_multi_call` = {c['asked']}): {c['built']} built from "
            f"single-call training examples ({c['parallel']} parallel, {c['parallel_multiple']} parallel_multiple; "
            f"{sizes}), {c['kept']} kept (train split only), {c['quarantined']} quarantined; source `composed`.", ""]


def _mismatched_lines(c: dict[str, int] | None) -> list[str]:
    """The totals' note on mismatched no-call examples (only when data.mismatch_no_call asks for some)."""
    if c is None:
        return []
    return [f"Mismatched no-call examples (`data.mismatch_no_call` = {c['asked']}): {c['built']} built, each a "
            f"training request offered its own example's other tools without the one it calls ({c['left_out_alike']} "
            f"also without a tool too like that one), {c['kept']} kept (train split only), {c['quarantined']} "
            f"quarantined; source `mismatched`.", ""]


def for_artifact(markdown: str, folder: Path) -> str:
    """The card for places that cannot show the PNGs beside it (a Prefect artifact): each image
    becomes a line saying where the file is."""
    out = []
    for line in markdown.splitlines():
        if line.startswith("![") and line.endswith(".png)"):
            alt, name = line[2:].split("](", 1)
            line = f"*{alt}: `{folder / name[:-1]}` (also in the MLflow run, `data_card/`)*"
        out.append(line)
    return "\n".join(out)


def count_by(values: list[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))


# ---------------------------------------------------------------- multi-turn

CALLS_PER_TURN_BINS = ("0", "1", "2", "3", "4", "5+")


def spread(values: list[int]) -> dict[str, float]:
    """mean / min / max (zeros for no values)."""
    if not values:
        return {"mean": 0.0, "min": 0, "max": 0}
    return {"mean": round(sum(values) / len(values), 2), "min": min(values), "max": max(values)}


def trajectory_counts(trajectories: list[Trajectory]) -> dict[str, Any]:
    """Turns per trajectory, calls per trajectory and per turn (spread and histogram)."""
    per_turn = [sum(len(s.calls) for s in turn.steps) for t in trajectories for turn in t.turns]
    histogram = Counter(str(n) if n < 5 else "5+" for n in per_turn)
    return {
        "trajectories": len(trajectories),
        "turns_per_trajectory": spread([len(t.turns) for t in trajectories]),
        "calls_per_trajectory": spread([len(t.calls) for t in trajectories]),
        "calls_per_turn": spread(per_turn),
        "calls_per_turn_histogram": {b: histogram.get(b, 0) for b in CALLS_PER_TURN_BINS},
    }


def multi_turn_stats(trajectories: list[Trajectory], cases: dict[str, dict[str, int]],
                     scenarios: dict[str, int]) -> dict[str, Any]:
    """The multi-turn part of stats.json. `cases`: per category {read, held_out, kept, quarantined};
    `scenarios`: train / eval scenario counts (and groups) of the split."""
    categories = sorted({*cases, *(t.category for t in trajectories)})
    return {
        "scenarios": scenarios,
        "cases": {cat: cases.get(cat, {}) for cat in categories},
        "trajectories": {"all": trajectory_counts(trajectories),
                         **{cat: trajectory_counts([t for t in trajectories if t.category == cat])
                            for cat in categories}},
    }


def _spread_text(s: dict[str, float]) -> str:
    return f"{s['mean']} ({s['min']}-{s['max']})"


def render_multi_turn(stats: dict[str, Any]) -> str:
    """The card's multi-turn section (appended by the curate stage when a bfcl_multi_turn source ran)."""
    sc, cases, traj = stats["scenarios"], stats["cases"], stats["trajectories"]
    case_keys = ("read", "held_out", "kept", "quarantined")
    rows = [[name, c["trajectories"], _spread_text(c["turns_per_trajectory"]),
             _spread_text(c["calls_per_trajectory"]), _spread_text(c["calls_per_turn"]),
             " / ".join(str(v) for v in c["calls_per_turn_histogram"].values())] for name, c in traj.items()]
    parts = [
        "## Multi-turn (BFCL executable environments)",
        "",
        f"Scenarios: {sc['train']} train / {sc['eval']} held out for evaluation, in {sc['groups']} groups "
        f"(seed {sc['seed']}, eval share {sc['eval_share']}); a held-out scenario's cases in every category "
        "are counted, never converted. Training records: `multi_turn/train_rl.jsonl` (RL) and "
        "`multi_turn/train_sft.jsonl` (SFT trajectories); rejected cases: `multi_turn/quarantine.jsonl`.",
        "",
        _table(["category", *case_keys], [[cat, *(c.get(k, 0) for k in case_keys)] for cat, c in cases.items()]),
        "",
        "Per SFT trajectory, mean (min-max); calls per turn as a histogram over "
        f"{' / '.join(CALLS_PER_TURN_BINS)} calls:",
        "",
        _table(["category", "trajectories", "turns", "calls", "calls per turn", "turns with 0/1/2/3/4/5+ calls"],
               rows),
        "",
    ]
    if stats.get("prompt_tokens"):
        parts += [f"Opening prompt tokens (RL records; the single-turn cap does not apply): "
                  f"{json.dumps(stats['prompt_tokens'])}", ""]
    reasons = stats.get("quarantine_reasons") or {}
    if reasons:
        parts += [_table(["reason", "count"], [[r, n] for r, n in reasons.items()]), ""]
    return "\n".join(parts)
