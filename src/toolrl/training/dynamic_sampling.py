"""Dynamic sampling (DAPO, arXiv 2503.14476, section 3.2; verl's `algorithm.filter_groups`): a step's groups
that carry no policy gradient are replaced by groups of freshly drawn prompts.

GRPO normalises rewards within a group, so a group whose completions all got the same reward has advantage
0 on every token: it adds nothing to the policy-gradient term, only its share of the KL term. At 2 prompts a
step, 28-44 % of the groups of the 100-step runs were such (docs/RESULTS.md), and many steps learned from one
group. With `grpo.dynamic_sampling: k` (0: off), once a step's rollouts are scored, each silent group is
replaced by a group with signal from a further generation pass over prompts drawn at random from the
training set (seeded by seed, step, pass and process), for at most k further passes a step; a group still
silent after them stays. The step's batch keeps its size and its rows keep their layout, so the loss, the
optimizer step and everything after generation are TRL's: only which groups make the batch changes.

"Silent" is read from the advantages themselves: a group whose advantages on its completion tokens all
agree (spread at most `SILENT`) has no signal, so grpo_trm's groups whose outcome rewards tie but whose calls
the TRM scores apart keep their place. The spread, not the size, is the test because a tied group's
advantage is (r - mean) / (std + 1e-4) in TRL: the group mean of equal rewards can be one rounding step off
r, which the 1e-4 turns into |A| ~ 1e-3, the same value on every row. With `scale_rewards: batch`, each
pass's groups keep the scale of their own pass.

What a step logs about its rollouts (rewards, call statistics, TRL's `frac_reward_zero_std`, grpo_trm's
`trm/*`) covers every generated group, the replaced ones too: each pass appends one value per metric, which
`fill` folds into one value weighted by the pass's rows (a mean; the least or the greatest for min and max
metrics). `dynamic_sampling/*` says how many groups were silent in the step's first pass (comparable with a
run without it), how many were replaced, and how many silent ones the batch kept.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import torch

SILENT = 1e-6  # a group's advantages spread no wider than this carry no signal (see the module doc)
PROMPT_KEYS = ("prompt_ids", "prompt_mask")  # left-padded; every other (rows, width) tensor is completion-aligned


class DynamicSamplingError(ValueError):
    pass


def group_rows(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, group: int) -> int:
    """The number of groups in a batch, checked to be `group` consecutive rows sharing one prompt each."""
    rows = prompt_ids.size(0)
    if rows % group:
        raise DynamicSamplingError(f"dynamic sampling needs whole groups on each process, but this process holds "
                                   f"{rows} rows for groups of {group}: make per_device_train_batch_size x "
                                   "steps_per_generation a multiple of num_generations, or set grpo.dynamic_sampling to 0")
    for g in range(rows // group):
        block = slice(g * group, (g + 1) * group)
        ids, mask = prompt_ids[block], prompt_mask[block]
        if not all(torch.equal(ids[i][mask[i].bool()], ids[0][mask[0].bool()]) for i in range(1, group)):
            raise DynamicSamplingError(f"rows {block.start}-{block.stop - 1} of this process do not share one prompt: "
                                       "dynamic sampling needs each group's rows together on one process "
                                       "(set grpo.dynamic_sampling to 0 for this launch)")
    return rows // group


def silent_groups(advantages: torch.Tensor, completion_mask: torch.Tensor, group: int) -> list[int]:
    """Indices of the groups whose advantages all agree (spread at most `SILENT`): (rows,) advantages, or
    grpo_trm's (rows, tokens) ones read on the completion tokens only."""
    adv = advantages.float()
    if adv.dim() == 2:
        used = completion_mask[:, :adv.size(1)].bool()
        hi = adv.masked_fill(~used, float("-inf")).amax(dim=1)
        lo = adv.masked_fill(~used, float("inf")).amin(dim=1)
    else:
        hi = lo = adv
    spread = hi.view(-1, group).amax(dim=1) - lo.view(-1, group).amin(dim=1)  # no completion token: -inf, silent
    return [g for g, a in enumerate(spread.tolist()) if not a > SILENT]


def _pad(t: torch.Tensor, width: int, left: bool, value: float) -> torch.Tensor:
    if t.size(1) == width:
        return t
    fill = t.new_full((t.size(0), width - t.size(1)), value)
    return torch.cat([fill, t] if left else [t, fill], dim=1)


def _pad_value(key: str, pad_id: int) -> float:
    return pad_id if key in ("prompt_ids", "completion_ids") else (1 if key == "tool_mask" else 0)


def replace_groups(batch: dict[str, Any], extra: dict[str, Any], pairs: list[tuple[int, int]], group: int,
                   pad_id: int, pad_to_multiple_of: int | None = None) -> dict[str, Any]:
    """`batch` with group `a` replaced by `extra`'s group `b` for each (a, b) in `pairs`. Prompts stay
    left-padded and completion-aligned tensors right-padded, to the widest row either batch holds, then
    trimmed to the widest row kept. `num_items_in_batch` is left for the caller (it spans processes)."""
    rows = batch["prompt_ids"].size(0)
    source = {a: rows + b * group for a, b in pairs}
    index = torch.tensor([source.get(g, g * group) + i for g in range(rows // group) for i in range(group)],
                         device=batch["prompt_ids"].device)
    widths = {"prompt": max(batch["prompt_ids"].size(1), extra["prompt_ids"].size(1)),
              "completion": max(batch["completion_ids"].size(1), extra["completion_ids"].size(1))}
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if key == "num_items_in_batch":
            continue
        other = extra[key]
        if not isinstance(value, torch.Tensor) or value.dim() == 0 or value.size(0) != rows:
            raise DynamicSamplingError(f"dynamic sampling cannot merge the batch field {key!r} (multimodal inputs are not "
                                       "supported): set grpo.dynamic_sampling to 0")
        if value.dim() == 2 and value.size(1) != other.size(1):
            prompt = key in PROMPT_KEYS
            width = widths["prompt" if prompt else "completion"]
            value, other = (_pad(t, width, prompt, _pad_value(key, pad_id)) for t in (value, other))
        out[key] = torch.cat([value, other]).index_select(0, index)
    return trim(out, pad_to_multiple_of)


def trim(batch: dict[str, Any], pad_to_multiple_of: int | None = None) -> dict[str, Any]:
    """Drop the padding columns no row uses: leading prompt columns, trailing completion columns."""
    def width(mask: torch.Tensor) -> int:
        # at least one column: with mask_truncated_completions every row's mask can be 0, and TRL's loss
        # reads logits_to_keep from the completion width
        w = max(int(mask.sum(dim=1).max()) if mask.numel() else 0, 1)
        m = pad_to_multiple_of or 1
        return min(mask.size(1), -(-w // m) * m)

    p, c = width(batch["prompt_mask"]), width(batch["completion_mask"])
    full_c = batch["completion_ids"].size(1)
    out = {}
    for key, value in batch.items():
        if key in PROMPT_KEYS:
            out[key] = value[:, value.size(1) - p:]
        elif isinstance(value, torch.Tensor) and value.dim() == 2 and value.size(1) == full_c:
            out[key] = value[:, :c]
        else:
            out[key] = value
    return out


def draw_inputs(dataset: Any, groups: int, group: int, seed: str) -> list[dict[str, Any]]:
    """`groups` prompts drawn at random from the training set (without replacement while it lasts), each
    repeated `group` times as TRL's sampler lays a group out."""
    rng = random.Random(seed)
    n = len(dataset)
    picks = rng.sample(range(n), groups) if groups <= n else [rng.randrange(n) for _ in range(groups)]
    return [dict(dataset[i]) for i in picks for _ in range(group)]


def fold_pass_metrics(metrics: dict[str, list[float]], before: dict[str, int], rows: list[int]) -> None:
    """Fold the values each of a step's generation passes appended to a metric into one, weighted by the
    pass's rows: a metric's min or max stays the least or greatest, anything else becomes the row-weighted
    mean (NaN values, e.g. a length over no terminated completion, left out). Metrics that did not get
    exactly one value per pass are left as they are."""
    for key, values in metrics.items():
        start = before.get(key, 0)
        if len(values) - start != len(rows) or len(rows) < 2:
            continue
        step = values[start:]
        words = key.rsplit("/", 1)[-1].split("_")  # "min_length", "low_min", "max"; not "mean_terminated_length"
        if "min" in words or "max" in words:
            kept = [v for v in step if v == v]
            folded = (min if "min" in words else max)(kept) if kept else float("nan")
        else:
            pairs = [(v, w) for v, w in zip(step, rows, strict=True) if v == v]
            folded = sum(v * w for v, w in pairs) / sum(w for _, w in pairs) if pairs else float("nan")
        del values[start:]
        values.append(float(folded))


def fill(trainer: Any, inputs: list[dict[str, Any]], passes: int,
         rollouts: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> dict[str, Any]:
    """The step's batch: one pass of `rollouts` (the trainer's one-pass generate-and-score) over `inputs`,
    its silent groups then replaced through at most `passes` further passes. Logs `dynamic_sampling/*` and
    folds the passes' rollout metrics into one value each (`fold_pass_metrics`)."""
    acc = trainer.accelerator
    group = trainer.num_generations
    metrics = trainer._metrics["train"]
    before = {k: len(v) for k, v in metrics.items()}
    batch = rollouts(inputs)
    rows = [len(inputs)]
    groups = group_rows(batch["prompt_ids"], batch["prompt_mask"], group)
    silent = silent_groups(batch["advantages"], batch["completion_mask"], group)
    first, replaced, used = len(silent), 0, 0
    for n in range(1, passes + 1):
        # every process takes the same passes with the same number of rows: TRL gathers rewards across them
        need = int(acc.gather(torch.tensor([len(silent)], device=acc.device)).max())
        if need == 0:
            break
        seed = f"{trainer.args.seed}/{trainer.state.global_step}/{n}/{acc.process_index}"
        extra = rollouts(draw_inputs(trainer.train_dataset, need, group, seed))
        rows.append(need * group)
        dead = set(silent_groups(extra["advantages"], extra["completion_mask"], group))
        pairs = list(zip(silent, [g for g in range(need) if g not in dead], strict=False))  # as many as both have
        batch = replace_groups(batch, extra, pairs, group, trainer.processing_class.pad_token_id,
                               trainer.pad_to_multiple_of)
        replaced += len(pairs)
        used = n
        silent = silent[len(pairs):]
    fold_pass_metrics(metrics, before, rows)
    mask = batch["completion_mask"] * batch.get("tool_mask", 1)
    batch["num_items_in_batch"] = acc.gather(mask.sum()).sum()
    for key, value in {"dynamic_sampling/silent_first": first / groups, "dynamic_sampling/replaced": replaced / groups,
                       "dynamic_sampling/silent_kept": len(silent) / groups, "dynamic_sampling/passes": used}.items():
        metrics[key].append(float(acc.gather(torch.tensor([float(value)], device=acc.device)).mean()))
    return batch
