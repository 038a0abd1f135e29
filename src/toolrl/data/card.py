"""The data card: counts per source, per number of calls and per split, quarantine reasons, and
histograms (tools per example, prompt length) as PNG, plus `stats.json` for DVC metrics.

Everything here is a pure function of the curation's counts, so the same params give the same bytes
(PNG metadata is stripped of the matplotlib version for the same reason).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from toolrl.data.split import SPLITS

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
        f"{t['read']} upstream records read + {t['generated']} extra examples generated (multi-turn) = "
        f"{t['kept']} kept + {t['quarantined']} quarantined + {t['duplicates']} duplicates "
        f"({stats['duplicates']['exact']} exact, {stats['duplicates']['near']} near).",
        "",
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
