"""The data card of `data/trm/`: where the step records come from, how they were labelled, what is in
them (sizes, label balance, the rule labeler's reasons, the hard negatives) and a few examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolrl.config import Params


def _table(rows: list[tuple[Any, ...]], head: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _example(rec: dict[str, Any]) -> str:
    prefix = rec["prefix"][-160:].replace("\n", "\\n")
    return (f"- `{rec['id']}` label **{rec['label']}** (necessity {rec.get('necessity')}, quality "
            f"{rec.get('quality')}, {rec.get('reason')}; {rec['source']}{', ' + rec['kind'] if rec.get('kind') else ''})"
            f"\n  - before the call: `...{prefix}`\n  - call: `{rec['call'][:200]}`")


def _conversations(stats: dict[str, Any]) -> str:
    """The multi-turn mode's counts (empty for single-turn data)."""
    if stats.get("task") != "multi_turn":
        return ""
    stops = ", ".join(f"{k.split('/', 1)[1]} {v}" for k, v in sorted(stats.items()) if k.startswith("stop/"))
    return (f"## Conversations (multi-turn)\n\n- calls per trajectory: {stats.get('mean_calls_per_trajectory', 0.0):.2f}"
            f"\n- user turns completed per conversation: {stats.get('mean_turns_completed', 0.0):.2f} (share of all turns "
            f"{stats.get('turn_completion_rate', 0.0):.2f})\n- stops: {stops}\n- cases adding only their reference "
            f"calls: {stats.get('reference_only_prompts', 0)}\n\n")


def write_card(path: Path, params: Params, stats: dict[str, Any], splits: dict[str, list[dict[str, Any]]]) -> Path:
    sec = params.trm.data
    labeler = ("rule labels against the ground truth (necessity x quality, see docs/TRM.md)" if sec.labeler == "rule"
               else f"an LLM judge at {sec.judge.base_url} (model `{sec.judge.model}`, prompt "
                    "src/toolrl/prompts/trm_judge.md); rule labels kept as `rule_label`")
    sizes = [(name, stats.get(f"{name}/records", 0), stats.get(f"{name}/positives", 0),
              f"{stats.get(f'{name}/positive_fraction', 0.0):.2f}",
              ", ".join(f"{k.split('/')[-1]} {v}" for k, v in stats.items() if k.startswith(f"{name}/source/")))
             for name in ("train", "val")]
    reasons = sorted(((k.split("/", 1)[1], v) for k, v in stats.items() if k.startswith("rule_reason/")),
                     key=lambda kv: -kv[1])
    negatives = sorted((k.split("/", 1)[1], v, stats.get(f"negative_noop/{k.split('/', 1)[1]}", 0),
                        stats.get(f"negative_skipped/{k.split('/', 1)[1]}", 0))
                       for k, v in stats.items() if k.startswith("negative/"))
    source = (f"multi-turn cases of `{params.data.output_dir}/multi_turn/train_rl.jsonl`, one conversation per sample"
              if stats.get("task") == "multi_turn" else f"training prompts of `{params.data.output_dir}/train.jsonl`")
    examples = []
    for label in (1, 0):
        examples += [r for r in splits["train"] if r["label"] == label][:2]
    text = f"""# TRM step data

One record per tool call: the context up to the call (prompt + the completion before it), the call,
and a label = necessity x quality. Written by the `trm_data` stage (`toolrl trm data`).

## Provenance

- prompts: {stats.get('prompts')} {source} (seed {sec.seed})
- policy: `{stats.get('policy', sec.policy)}` ({stats.get('policy_folder', '')}), {sec.samples_per_prompt} samples
  per prompt, temperature {sec.temperature}, up to {sec.max_new_tokens} new tokens
- labels: {labeler}
- reference calls as positives: {sec.reference_positives}; hard negatives per correct call: {sec.hard_negatives_per_call}
  ({', '.join(sec.negative_kinds)})
- train labels balanced to a positive fraction of {sec.positive_fraction} (cap {sec.max_records}); val is
  {sec.val_fraction:.0%} of the prompts, unbalanced

## Rollouts

- completions: {stats.get('completions', 0)}, with at least one call: {stats.get('completions_with_calls', 0)}
- calls: {stats.get('calls', 0)} ({stats.get('mean_calls_per_completion', 0.0):.2f} per completion)
- duplicates dropped: {stats.get('duplicates_dropped', 0)}; quarantined (judge failures): {stats.get('quarantined', 0)}
- dropped by balancing: {stats.get('dropped_positives', 0)} positives, {stats.get('dropped_negatives', 0)} negatives

{_conversations(stats)}## Sizes

{_table(sizes, ("split", "records", "positives", "positive fraction", "by source"))}

## Rule verdicts on the policy's calls

{_table(reasons, ("reason", "calls")) if reasons else "(no calls)"}

## Hard negatives

{_table(negatives, ("kind", "made", "no-op (dropped)", "not applicable")) if negatives else "(none)"}

## Examples (train)

{chr(10).join(_example(r) for r in examples) if examples else "(none)"}
"""
    path.write_text(text, encoding="utf-8")
    return path
