"""A batch's common token prefixes computed once: the TRM's training, validation and scoring passes.

A TRM batch holds call records whose sequences start with the same prompt (system prompt, tool schemas,
request: ~550-650 tokens) when they come from one prompt: the calls of its sampled completions, the
reference call and its hard negatives. The stock forward runs each row over its whole prompt. Here
(the same idea as shared-prefix GRPO, toolrl.training.shared_prefix, for any causal model's forward):

1. the rows are grouped by common token prefix (`prefix_groups`: sorted, so rows that share a prompt
   are neighbours; a row joins a group while that saves tokens);
2. each group's prefix runs once at batch 1 with a KV cache, which is repeated for the group's rows
   (`repeated`: `repeat_interleave`, differentiable, so in backward the rows' gradients sum into the
   one prefix pass);
3. the rows' remaining tokens run against that cache; the rows no group took run as one batch, as in
   the stock forward.

The output is the stock forward's `logits`, (batch, length, classes), at every real position; the
prefix positions' logits are the prefix pass's own, the same in every row of the group. Attention is
causal, so a prefix token never sees what follows it and computing it once changes no number but
rounding (tests/test_trm_shared_prefix.py: logits, loss and every gradient equal to the stock forward's
in fp32). Positions at padding differ (no loss reads them). A model that is not causal throughout (a
BERT-like backbone), one whose layers are not all full attention in the sdpa or eager kernel
(`toolrl.decode.supported`: sliding windows, linear attention) and a batch that is not right-padded take
the stock forward.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from toolrl.training.right_padding import is_causal, is_right_padded


def repeated(cache: Any, rows: int) -> Any:
    """A copy of a prompt's cache holding it `rows` times. The forward pass extends a cache by reassigning
    its layers' tensors, never in place, so new layer objects over the same tensors leave `cache` intact
    (and keep its autograd graph, which a deep copy cannot)."""
    out = copy.copy(cache)
    out.layers = [copy.copy(layer) for layer in cache.layers]
    out.batch_repeat_interleave(rows)
    return out


def _common(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def prefix_groups(rows: list[list[int]], min_shared: int = 16) -> list[tuple[int, list[int]]]:
    """Rows grouped by a common prefix: (shared length, row indices), every row in exactly one group.
    A group shares at most each row's length minus one (every row keeps a token of its own, so its last
    position, where the TRM reads its label, is always computed in the row's own pass); groups of one
    share 0. Rows are visited in sorted order and a row joins the open group while the tokens saved
    do not fall (n rows sharing s tokens compute s + sum(len - s); joining shrinks s to s')."""
    min_shared = max(min_shared, 1)  # a group shares at least one token
    order = sorted(range(len(rows)), key=lambda i: rows[i])
    groups: list[tuple[int, list[int]]] = []
    shared, members = 0, []
    for i in order:
        if members:
            s = min(shared, _common(rows[members[-1]], rows[i]), len(rows[i]) - 1)
            if s >= min_shared and len(members) * (shared - s) <= s:
                shared = s
                members.append(i)
                continue
            groups.append((shared if len(members) > 1 else 0, members))
        shared, members = len(rows[i]) - 1, [i]
    if members:
        groups.append((shared if len(members) > 1 else 0, members))
    return groups


def shared_prefix_logits(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                         min_shared: int = 16) -> torch.Tensor:
    """`model(input_ids, attention_mask).logits` with each group's common prefix computed once (module doc).
    `model`: a causal transformers model whose forward takes `past_key_values` (a token classifier, a LM)."""
    from transformers import DynamicCache

    from toolrl.decode import supported

    covered = is_causal(model) and supported(getattr(model, "module", model)) and is_right_padded(attention_mask)
    lengths = attention_mask.sum(dim=1).tolist()
    groups = prefix_groups([ids[:n] for ids, n in zip(input_ids.tolist(), lengths, strict=True)],
                           min_shared) if covered else []
    if all(len(members) == 1 for _, members in groups):  # nothing to share (or not covered): the stock forward
        return model(input_ids=input_ids, attention_mask=attention_mask).logits
    width, device = input_ids.size(1), input_ids.device
    config = getattr(model, "module", model).config  # a DDP-wrapped model keeps its config on .module
    order: list[int] = []
    parts: list[torch.Tensor] = []
    alone = [members[0] for _, members in groups if len(members) == 1]
    if alone:
        index = torch.tensor(alone, device=device)
        longest = max(lengths[i] for i in alone)
        logits = model(input_ids=input_ids[index, :longest], attention_mask=attention_mask[index, :longest]).logits
        parts.append(torch.nn.functional.pad(logits, (0, 0, 0, width - longest)))
        order.extend(alone)
    for shared, members in groups:
        if len(members) == 1:
            continue
        index = torch.tensor(members, device=device)
        longest = max(lengths[i] for i in members)
        cache = DynamicCache(config=config)
        head = model(input_ids=input_ids[members[0], :shared].unsqueeze(0), past_key_values=cache,
                     use_cache=True).logits
        mask = torch.cat([attention_mask.new_ones(len(members), shared), attention_mask[index, shared:longest]], dim=1)
        tail = model(input_ids=input_ids[index, shared:longest], attention_mask=mask,
                     past_key_values=repeated(cache, len(members)), use_cache=True).logits
        logits = torch.cat([head.expand(len(members), -1, -1), tail], dim=1)
        parts.append(torch.nn.functional.pad(logits, (0, 0, 0, width - longest)))
        order.extend(members)
    inverse = torch.argsort(torch.tensor(order, device=device))
    return torch.cat(parts)[inverse]  # an index_select: gradients flow back to each group's passes
