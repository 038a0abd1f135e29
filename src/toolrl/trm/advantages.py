"""Turn-level advantages for TRM-guided GRPO: pure functions on tensors and lists.

A batch holds groups of `G` completions of the same prompt, laid out consecutively (TRL's order).
Completion j has an outcome reward r_j (the ToolRL reward) and one TRM score s_j,i per tool call i.

    A_outcome(j)  = (r_j - mean_group(r)) / (std_group(r) + eps)
    A_call(j, i)  = (s_j,i - mean_{k in group, k has a call i}(s_k,i)) / (std_{same}(s_k,i) + eps)
    A(token t of completion j) = A_outcome(j) + alpha * A_call(j, i)   if t belongs to call i
                               = A_outcome(j)                          otherwise

Call i is compared only with call i of the other completions of the group (turn-level). "Call i" is
a position key per call: its index in the completion for single-turn completions, (user turn, index
of the call in that turn) for multi-turn conversations (`toolrl.trm.multi_turn`). When fewer
than two completions of a group have a call i, call i has nothing to be compared with and its call
advantage is 0: the tokens keep the outcome advantage alone. (A raw TRM score is not an advantage;
giving a lone call a positive one would pay the policy for making more calls than its peers.)

`pooled` (the ablation) normalises all calls of a group together, ignoring position; the TRM paper
reports that this teaches the policy to make fewer calls. std is the unbiased one (as TRL's), and a
group whose values are all equal gets advantage 0 (0 / (0 + eps)).

Call-advantage estimators are a registry, as verl's `register_adv_est`: an estimator reads the calls'
position keys and says which calls of a group are normalised together (its "slots"), and `trm.grpo.advantage` picks one by name. A new
estimator is one decorated function here; no trainer or stage changes. torch is imported where
tensors are made, so the params schema can list the estimators cheaply.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

EPS = 1e-4
# (the calls' position keys in a batch, the row indices of one group) -> slots: lists of (row, call
# index) normalised together. A call in no slot gets advantage 0.
Slots = list[list[tuple[int, int]]]
Keys = Sequence[Sequence[Hashable]]
CallAdvantageEstimator = Callable[[Keys, range], Slots]
CALL_ADVANTAGES: dict[str, CallAdvantageEstimator] = {}


def register_call_advantage(name: str) -> Callable[[CallAdvantageEstimator], CallAdvantageEstimator]:
    """Register a call-advantage estimator under `name` (the value of `trm.grpo.advantage`)."""
    def register(fn: CallAdvantageEstimator) -> CallAdvantageEstimator:
        if name in CALL_ADVANTAGES:
            raise ValueError(f"call advantage estimator {name!r} is already registered")
        CALL_ADVANTAGES[name] = fn
        return fn
    return register


def get_call_advantage(name: str) -> CallAdvantageEstimator:
    if name not in CALL_ADVANTAGES:
        raise ValueError(f"unknown call advantage estimator {name!r}: use one of {', '.join(CALL_ADVANTAGES)}")
    return CALL_ADVANTAGES[name]


@register_call_advantage("turn_level")
def turn_level(keys: Keys, group: range) -> Slots:
    """Call i of each completion against call i of the group's others (the TRM paper's refinement):
    the calls that share a position key."""
    slots: dict[Hashable, list[tuple[int, int]]] = {}
    for j in group:
        for i, key in enumerate(keys[j]):
            slots.setdefault(key, []).append((j, i))
    return list(slots.values())


@register_call_advantage("pooled")
def pooled(keys: Keys, group: range) -> Slots:
    """All calls of the group together, whatever their position (the ablation)."""
    return [[(j, i) for j in group for i in range(len(keys[j]))]]


def _normalise(values: torch.Tensor, scale: bool, eps: float) -> torch.Tensor:
    import torch


    if values.numel() < 2:
        return torch.zeros_like(values)
    centred = values - values.mean()
    return centred / (values.std() + eps) if scale else centred


def _check_groups(n: int, num_generations: int) -> None:
    if num_generations < 1 or n % num_generations:
        raise ValueError(f"{n} completions do not form whole groups of {num_generations}")


def outcome_advantages(rewards: torch.Tensor, num_generations: int, scale: bool = True,
                       eps: float = EPS) -> torch.Tensor:
    """Each completion's reward normalised within its group (TRL's `scale_rewards="group"`)."""
    import torch

    _check_groups(rewards.numel(), num_generations)
    groups = rewards.float().view(-1, num_generations)
    return torch.cat([_normalise(g, scale, eps) for g in groups]).view(-1)


def call_advantages(scores: Sequence[Sequence[float]], num_generations: int, mode: str = "turn_level",
                    scale: bool = True, eps: float = EPS, keys: Keys | None = None) -> list[list[float]]:
    """One advantage per call, shaped like `scores` (a list of call scores per completion); `mode`
    names the estimator (`CALL_ADVANTAGES`); `keys`, shaped like `scores`, are the calls' positions
    (default: each call's index in its completion)."""
    import torch

    _check_groups(len(scores), num_generations)
    if keys is None:
        keys = [list(range(len(s))) for s in scores]
    if [len(k) for k in keys] != [len(s) for s in scores]:
        raise ValueError("call position keys are not shaped like the call scores")
    estimator = get_call_advantage(mode)
    out: list[list[float]] = [[0.0] * len(s) for s in scores]
    for start in range(0, len(scores), num_generations):
        for slot in estimator(keys, range(start, start + num_generations)):
            values = torch.tensor([float(scores[j][i]) for j, i in slot], dtype=torch.float64)
            for (j, i), a in zip(slot, _normalise(values, scale, eps).tolist(), strict=True):
                out[j][i] = a
    return out


def multi_call_group_share(scores: Sequence[Sequence[float]], num_generations: int) -> float:
    """Share of groups with a completion of two or more calls: the only groups where turn-level and
    pooled call advantages differ (with at most one call per completion, call 0 of the group is all
    the calls, so both normalise the same values)."""
    _check_groups(len(scores), num_generations)
    starts = range(0, len(scores), num_generations)
    multi = sum(any(len(scores[j]) > 1 for j in range(s, s + num_generations)) for s in starts)
    return multi / max(len(starts), 1)


def token_advantages(outcome: torch.Tensor, call_adv: Sequence[Sequence[float]],
                     call_tokens: Sequence[Sequence[tuple[int, int]]], length: int,
                     alpha: float) -> torch.Tensor:
    """(B, length) advantages: A_outcome everywhere, plus alpha * A_call(i) on the tokens [start, end)
    of call i. Token ranges of one completion must not overlap."""
    if not (len(outcome) == len(call_adv) == len(call_tokens)):
        raise ValueError(f"batch sizes differ: {len(outcome)} outcomes, {len(call_adv)} call advantage lists, "
                         f"{len(call_tokens)} token span lists")
    out = outcome.detach().float().unsqueeze(1).repeat(1, length)
    for b, (advs, spans) in enumerate(zip(call_adv, call_tokens, strict=True)):
        if len(advs) != len(spans):
            raise ValueError(f"completion {b}: {len(advs)} call advantages for {len(spans)} token spans")
        for a, (s, e) in zip(advs, spans, strict=True):
            if not 0 <= s <= e <= length:
                raise ValueError(f"completion {b}: token span ({s}, {e}) outside 0..{length}")
            out[b, s:e] += alpha * a
    return out.to(outcome.dtype) if outcome.is_floating_point() else out
