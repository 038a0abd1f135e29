"""How much a reward variant changes GRPO's learning signal: the groups a GRPO run logged, scored again
by each variant at the step they were drawn, turned into the group advantages GRPO trains on, and
compared with a reference variant's.

GRPO normalises each group's rewards by their mean and std, so a variant that only rescales the
components changes nothing where one component (say, format) is equal across a group and the other
sets the order. Reading a grid of variants at a few dozen steps starts here: a variant that gives the
reference's advantages on nearly every logged group cannot be told apart from it by training, whatever
its formula says (docs/RESULTS.md, the reward grid).

The groups are read from the sample tables `toolrl train grpo` logs to MLflow (`samples/grpo_step_*.json`:
columns `step`, `completion`, `ground_truth`, ..., the step's completions in TRL's order, a group's
`num_generations` rows together). Advantages are those of `grpo.scale_rewards: group` (the default); with
`batch` or `none` a rescaling variant does change them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolrl.rewards.registry import get_variant
from toolrl.rewards.scorer import Scorer

SAME_TOLERANCE = 0.01  # advantages this close (max abs difference over a group) count as the same signal


class SampleTableError(ValueError):
    """A sample table that cannot be read as groups; the message says why and how to fix it."""


Group = list[dict[str, Any]]  # rows with `step`, `completion`, `ground_truth`


def read_groups(paths: Iterable[Path], group_size: int) -> list[Group]:
    """The groups of every sample table in `paths`: consecutive runs of `group_size` rows that share a
    ground truth (one prompt's completions)."""
    groups: list[Group] = []
    for path in paths:
        try:
            table = json.loads(Path(path).read_text())
            rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SampleTableError(f"{path}: not an MLflow sample table with `columns` and `data` ({exc})") from exc
        missing = {"step", "completion", "ground_truth"} - set(table["columns"])
        if missing:
            raise SampleTableError(f"{path}: no column {', '.join(sorted(missing))}; GRPO's sample tables have them")
        if len(rows) % group_size:
            raise SampleTableError(f"{path}: {len(rows)} rows do not form groups of {group_size}: pass the run's "
                                   "grpo.num_generations as the group size")
        for start in range(0, len(rows), group_size):
            group = rows[start : start + group_size]
            if len({r["ground_truth"] for r in group}) != 1:
                raise SampleTableError(f"{path}: rows {start}-{start + group_size - 1} hold different ground "
                                       f"truths, so they are not one prompt's group of {group_size}: pass the "
                                       "run's grpo.num_generations as the group size")
            groups.append(group)
    return groups


@dataclass
class Agreement:
    variant: str
    groups: int
    silent: int  # groups whose rewards are all equal: no learning signal
    same: int  # groups whose advantages equal the reference's within SAME_TOLERANCE
    both_vary: int  # groups where both variants have a signal
    mean_correlation: float  # of the advantages, over the groups where both vary
    min_correlation: float
    same_sign: float  # share of completions (in groups where both vary) pushed the same way


def advantages(rewards: Sequence[float]) -> list[float]:
    """GRPO's advantages of one group (TRL's scale_rewards="group", as the trainers use them)."""
    import torch

    from toolrl.trm.advantages import outcome_advantages

    return outcome_advantages(torch.tensor(rewards, dtype=torch.float64), len(rewards)).tolist()


def readable_without_tools(variant: str) -> bool:
    """Whether a variant scores a completion from the sample tables alone (the schema variants need tools)."""
    return get_variant(variant).values != "schema"


def compare_variants(groups: Sequence[Group], variants: Sequence[str], reference: str = "default") -> list[Agreement]:
    """Each variant's advantages on `groups` against the reference's (listed first)."""
    import numpy as np

    names = [reference] + [v for v in variants if v != reference]
    for name in names:
        if not readable_without_tools(name):
            raise ValueError(f"variant {name!r} reads the tools' schemas, which sample tables do not hold: "
                             "leave it out of --variants")
    scorers = {name: Scorer(name) for name in names}
    adv: dict[str, list[np.ndarray]] = {name: [] for name in names}
    silent = dict.fromkeys(names, 0)
    for group in groups:
        step = int(group[0]["step"])
        for name in names:
            rewards = [scorers[name](r["completion"], r["ground_truth"], step).total for r in group]
            silent[name] += max(rewards) == min(rewards)
            adv[name].append(np.asarray(advantages(rewards)))
    out = []
    for name in names:
        pairs = list(zip(adv[reference], adv[name], strict=True))
        varying = [(a, b) for a, b in pairs if np.ptp(a) > 0 and np.ptp(b) > 0]
        corr = [float(np.corrcoef(a, b)[0, 1]) for a, b in varying]
        signs = [float(np.mean(np.sign(a.round(6)) == np.sign(b.round(6)))) for a, b in varying]
        out.append(Agreement(name, len(groups), silent[name],
                             sum(float(np.abs(a - b).max()) < SAME_TOLERANCE for a, b in pairs), len(varying),
                             float(np.mean(corr)) if corr else float("nan"), min(corr, default=float("nan")),
                             float(np.mean(signs)) if signs else float("nan")))
    return out
