"""A lean decode loop after a shared prefill: `generate`'s tokens, with less work per step.

`decode(model, prompts, generation_config)` returns each prompt's completion tokens (up to and
including its first stop token), as TRL's rollout and the evaluation generator read `generate`'s
output. It differs from `generate` in how, not in what:

1. **Shared prefill.** Each distinct prompt but its last token is computed once, at batch 1
   (`prefill`); a GRPO group's G rows then share that work (G prompt passes become one).
2. **A preallocated cache.** Every row's keys and values sit in one buffer per layer, sized for the
   prompt and `max_new_tokens`; a step writes one column in place (`DynamicCache` concatenates the
   whole cache, every layer, every step) and attends over a view of the columns written so far, with
   a boolean mask kept in a buffer too (no per-step mask building).
3. **Finished rows leave the batch.** When a row emits a stop token its rows of the cache are dropped
   (`generate` keeps computing them to the end, padding), so later steps compute fewer rows.
4. **Carried caches** (`PrefixCaches`, optional). A multi-turn conversation's next prompt extends
   its last one, so its prefill extends the last prompt's cache by the new tokens only.
5. **Lookup drafts** (`Lookup`, optional). A step proposes each row's next few tokens by n-gram lookup
   (prompt lookup decoding) in its own prompt and text, then in the other rows' completions and recent
   ones (SuffixDecoding's observation, arXiv 2411.04975: RL rollouts repeat each other), and one forward
   pass checks them all. A decode step streams every weight for a handful of rows, so checking a few
   tokens a row costs little more than one. Greedy keeps the tokens whose argmax agrees, then the
   argmax after them: the same tokens. Sampling keeps a drafted token with its probability and on a
   refusal draws from the distribution without it (speculative sampling with a one-token draft): the
   same distribution, drawn with other random numbers, so not `generate`'s seeded draws.

The tokens are `generate`'s: the same positions (counted from each row's first real token, as
`generate` derives them from the attention mask), the same logits processors (built by `generate`'s
own `_get_logits_processor` from the same `GenerationConfig`: temperature, top-k, top-p, min-p,
repetition penalty, min_new_tokens...), greedy as `argmax`, sampling as `torch.multinomial` over the
softmax. A seeded sample draws `generate`'s tokens as well: `torch.multinomial` with one sample draws
one exponential variate per vocabulary entry of every row of its input, so each step it is called on a
full-batch tensor (the finished rows filled with ones) and the rows that left the batch consume the
random stream exactly as `generate`'s padded rows do. Numbers differ from `generate`'s by rounding only
(fewer rows in a matrix product, the prompt computed at batch 1); tests/test_decode.py holds greedy
and seeded sampled completions token for token equal to `generate`'s on fp32 weights.

Measured against `generate` and shared prefill + `generate` in docs/BENCHMARKS.md ("Generation
engines side by side"; `bench/generation.py --engines generate,shared,lean,lookup`).
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections import deque
from typing import Any

import torch


def supported(model: Any) -> bool:
    """Whether the loop covers this model: a decoder whose every layer attends to the whole context
    (no sliding window, no linear-attention or other cache types), in the full-attention sdpa or eager
    kernels. Llama, SmolLM2, Qwen2/2.5 (sliding window off, their default) and Qwen3 are."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "is_encoder_decoder", False):
        return False
    if config._attn_implementation not in ("sdpa", "eager"):
        return False
    if any(t != "full_attention" for t in getattr(config, "layer_types", None) or []):
        return False
    return not (getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True))


def prompt_cache(model: Any, tokens: list[int], device: torch.device) -> Any:
    """The KV cache of one prompt's tokens, in one batch-1 pass (the LM head on one position only).
    `model` may be wrapped (DDP has no `.device`), hence the device."""
    head = torch.tensor(tokens, device=device).unsqueeze(0)
    return model(input_ids=head, use_cache=True, logits_to_keep=1).past_key_values


class PrefixCaches:
    """The prompt caches of one round of `decode` calls, kept for the next round on the same weights.

    A multi-turn conversation's next prompt is its last prompt plus the message the model wrote and
    the environment's reply, so its cache is the last one extended by those few hundred tokens: the
    ~4k-token opening is prefilled once per conversation instead of once per message. `next_round()`
    makes the caches stored since the previous call the ones `decode` extends, and drops the older
    ones: a round's conversations only ever continue the previous round's sequences. Holding one is
    a promise that the weights do not change: a policy whose weights move (GRPO) uses one per set of
    weights (one `converse` call). Memory: one round's prompt caches on top of `decode`'s own."""

    def __init__(self) -> None:
        self._previous: dict[tuple[int, ...], Any] = {}
        self._current: dict[tuple[int, ...], Any] = {}

    def next_round(self) -> None:
        self._previous, self._current = self._current, {}

    def cache(self, model: Any, tokens: tuple[int, ...], device: torch.device) -> Any:
        """The cache of `tokens`: the longest stored prefix (copied: the forward pass extends a cache
        in place, and a group's rollouts share one) extended by the rest, else one pass from scratch."""
        known = max((k for k in self._previous if len(k) <= len(tokens) and tokens[:len(k)] == k), key=len,
                    default=None)
        if known is None:
            cache = prompt_cache(model, list(tokens), device)
        elif len(known) == len(tokens):
            cache = self._previous[known]
        else:
            cache = copy.deepcopy(self._previous[known])
            rest = torch.tensor(tokens[len(known):], device=device).unsqueeze(0)
            cache = model(input_ids=rest, past_key_values=cache, use_cache=True, logits_to_keep=1).past_key_values
        self._current[tokens] = cache
        return cache


def prefill(model: Any, prompt_ids: list[list[int]], device: torch.device,
            carry: PrefixCaches | None = None) -> tuple[list[Any], list[int]]:
    """The KV cache of each distinct prompt but its last token (extending `carry`'s when given), and for
    every row the index of its distinct prompt. Every prompt needs two tokens or more."""
    distinct = list(dict.fromkeys(tuple(p) for p in prompt_ids))
    if carry is None:
        caches = [prompt_cache(model, list(prompt[:-1]), device) for prompt in distinct]
    else:
        caches = [carry.cache(model, prompt[:-1], device) for prompt in distinct]
    return caches, [distinct.index(tuple(p)) for p in prompt_ids]


class _Buffers:
    """Keys and values of every layer in preallocated (rows, heads, capacity, dim) buffers; `columns`
    of them written. Quacks like a transformers `Cache` as far as a decoder's attention asks."""

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor], columns: int):
        self.keys, self.values, self.columns = keys, values, columns

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        start = self.columns
        end = start + key_states.size(2)
        self.keys[layer_idx][:, :, start:end].copy_(key_states)
        self.values[layer_idx][:, :, start:end].copy_(value_states)
        if layer_idx == len(self.keys) - 1:
            self.columns = end
        return self.keys[layer_idx][:, :, :end], self.values[layer_idx][:, :, :end]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.columns

    def select(self, rows: torch.Tensor) -> None:
        self.keys = [k.index_select(0, rows) for k in self.keys]
        self.values = [v.index_select(0, rows) for v in self.values]


def _batch_buffers(caches: list[Any], which: list[int], capacity: int) -> tuple[_Buffers, int]:
    """One buffer per layer for all rows: row r holds its prompt's cache right-aligned at column `width`."""
    width = max(c.layers[0].keys.size(2) for c in caches)
    keys, values = [], []
    index = torch.tensor(which)
    for i in range(len(caches[0].layers)):
        for name, out in (("keys", keys), ("values", values)):
            first = getattr(caches[0].layers[i], name)
            buf = first.new_zeros(len(caches), first.size(1), capacity, first.size(3))
            for u, cache in enumerate(caches):
                t = getattr(cache.layers[i], name)
                buf[u, :, width - t.size(2):width] = t[0]
            out.append(buf.index_select(0, index.to(buf.device)))
    return _Buffers(keys, values, width), width


def logits_processors(model: Any, generation_config: Any, input_ids: torch.Tensor) -> tuple[Any, Any]:
    """The generation config as `generate` completes it (the model's defaults merged in, special tokens
    as tensors) and the logits processors `generate` would build from it for these (padded) prompts."""
    config, _ = model._prepare_generation_config(generation_config)
    model._prepare_special_tokens(config, True, device=input_ids.device, batch_size=input_ids.size(0))
    processors = model._get_logits_processor(generation_config=config, input_ids_seq_length=input_ids.size(1),
                                             encoder_input_ids=input_ids, device=input_ids.device, model_kwargs={})
    return config, processors


# Drafts per pass where no params section sets them (the SFT probe, the benchmarks); the schema's
# `lookup_tokens` defaults are the same 6 (past 4 longer drafts neither pay nor cost here: docs/BENCHMARKS.md).
LOOKUP_TOKENS = 6


class Lookup:
    """Draft tokens for `decode` by n-gram lookup, and the recent completions they are also looked up in.

    A row's draft is what followed the latest earlier occurrence of its last `ngram` tokens (then fewer),
    first in its own prompt and text, then in the completions of the other rows and of the last `history`
    rows decoded with this object: up to `tokens` tokens. One object per policy (its completions are the
    pool), so hold it across `decode` calls. Drafts change how many forward passes a completion takes,
    never its tokens (greedy) or their distribution (sampling). `emitted` / `passes` count the tokens and
    row-passes of every call, for a tokens-per-pass figure."""

    def __init__(self, tokens: int, ngram: int = 3, history: int = 64):
        if tokens < 1 or ngram < 1:
            raise ValueError(f"Lookup needs tokens >= 1 and ngram >= 1, got tokens={tokens}, ngram={ngram}")
        self.tokens, self.ngram = tokens, ngram
        self.history: deque[list[int]] = deque(maxlen=history)
        self.emitted = self.passes = 0

    def tokens_per_pass(self) -> float:
        return self.emitted / self.passes if self.passes else 0.0


class _Drafts:
    """One `decode` call's lookup state: each row's sequence with an index of its n-grams (an n-gram maps
    to the sequence and the position after its latest occurrence), and one shared index of completions."""

    def __init__(self, lookup: Lookup, prompt_ids: list[list[int]]):
        self.lookup = lookup
        self.pool: dict[tuple[int, ...], tuple[list[int], int]] = {}
        for completion in lookup.history:
            self._index(self.pool, completion, 1)
        per_prompt: dict[tuple[int, ...], dict] = {}
        for prompt in prompt_ids:
            if tuple(prompt) not in per_prompt:
                per_prompt[tuple(prompt)] = self._index({}, list(prompt), 1)
        self.seqs = [list(p) for p in prompt_ids]
        self.starts = [len(p) for p in prompt_ids]
        self.own = [dict(per_prompt[tuple(p)]) for p in prompt_ids]

    def _index(self, index: dict, seq: list[int], start: int) -> dict:
        """Register the n-grams that end just before positions start.. of `seq` (their continuation)."""
        for i in range(max(start, 1), len(seq)):
            for n in range(1, min(self.lookup.ngram, i) + 1):
                index[tuple(seq[i - n:i])] = (seq, i)
        return index

    def draft(self, row: int, limit: int) -> list[int]:
        seq, limit = self.seqs[row], min(limit, self.lookup.tokens)
        if limit < 1:
            return []
        for n in range(min(self.lookup.ngram, len(seq)), 0, -1):
            key = tuple(seq[-n:])
            for index in (self.own[row], self.pool):
                hit = index.get(key)  # registered with a continuation, so never an empty draft
                if hit is not None:
                    return hit[0][hit[1]:hit[1] + limit]
        return []

    def extend(self, row: int, tokens: list[int]) -> None:
        seq = self.seqs[row]
        before = len(seq)
        seq.extend(tokens)
        self._index(self.own[row], seq, before)
        self._index(self.pool, seq, max(before, self.starts[row]))

    def remember(self) -> None:
        self.lookup.history.extend(seq[start:] for seq, start in zip(self.seqs, self.starts, strict=True))


class _RaggedBuffers(_Buffers):
    """`_Buffers` whose rows advance by different numbers of tokens: row r's next keys are written at
    column `columns + written[r]`, and a pass sees the columns up to the furthest row's last write (each
    row's mask hides what lies beyond its own). `begin(steps)` before each pass sets where its `steps`
    tokens a row go, once for every layer."""

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor], columns: int):
        super().__init__(keys, values, columns)
        self.written = torch.zeros(keys[0].size(0), dtype=torch.long, device=keys[0].device)
        self._at, self._end = None, columns

    def begin(self, steps: int) -> int:
        """Where this pass writes, and the number of columns it sees (returned, for the mask)."""
        at = self.columns + self.written[:, None] + torch.arange(steps, device=self.written.device)
        self._at = at[:, None, :, None].expand(-1, self.keys[0].size(1), -1, self.keys[0].size(3))
        self._end = self.columns + int(self.written.max()) + steps
        return self._end

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        # cast as `_Buffers.update`'s copy_ does (under bf16 autocast a pass's keys need not be the cache's dtype)
        self.keys[layer_idx].scatter_(2, self._at, key_states.to(self.keys[layer_idx].dtype))
        self.values[layer_idx].scatter_(2, self._at, value_states.to(self.values[layer_idx].dtype))
        return self.keys[layer_idx][:, :, :self._end], self.values[layer_idx][:, :, :self._end]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.columns + int(self.written.max())

    def select(self, rows: torch.Tensor) -> None:
        super().select(rows)
        self.written = self.written.index_select(0, rows)


def _for_attention(model: Any, allowed: torch.Tensor) -> torch.Tensor:
    """A boolean mask as the model's attention takes it: sdpa as is, eager as scores to add."""
    if model.config._attn_implementation == "sdpa":
        return allowed
    return torch.zeros(allowed.shape, dtype=model.dtype, device=allowed.device).masked_fill_(
        ~allowed, torch.finfo(model.dtype).min)


def speculable(processors: Any) -> bool:
    """Whether lookup drafts can be checked under these logits processors: each must read a position's
    logits alone (temperature, top-k, top-p, min-p), not the sequence before it (repetition penalty,
    min_new_tokens count tokens, and rows drafted ahead would each need their own)."""
    from transformers.generation.logits_process import (
        MinPLogitsWarper,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    return all(isinstance(p, (TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper, MinPLogitsWarper))
               for p in processors)


def verify(scores: torch.Tensor, drafts: torch.Tensor, lengths: torch.Tensor,
           do_sample: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """How many of each row's drafted tokens to keep, and the token after them.

    `scores` (rows, m + 1, vocab): the processed scores at the row's last token and after each of its `m`
    drafted tokens (`drafts`, rows x m, of which the first `lengths[r]` are real). Greedy keeps drafted
    tokens while each is the argmax, then takes the argmax. Sampling keeps drafted token d with
    probability p(d) and, at the first one refused, draws from p without d: the token that position
    emits is distributed as p (p(d) + (1 - p(d)) p(x) / (1 - p(d)) for x != d), so a completion is drawn
    from the policy exactly as token-by-token sampling draws it (speculative sampling whose draft puts
    all its mass on d)."""
    rows, m = drafts.shape
    real = torch.arange(m, device=drafts.device)[None, :] < lengths[:, None]
    index = torch.arange(rows, device=drafts.device)
    if not do_sample:
        best = scores.argmax(-1)
        kept = ((best[:, :m] == drafts) & real).long().cumprod(1).sum(1)
        return kept, best[index, kept]
    probs = torch.softmax(scores, dim=-1)
    p_draft = probs[:, :m].gather(-1, drafts[..., None]).squeeze(-1)
    kept = ((torch.rand(rows, m, device=drafts.device) < p_draft) & real).long().cumprod(1).sum(1)
    last = probs[index, kept]
    refused = (kept < lengths).nonzero().squeeze(1)
    if refused.numel():
        last[refused, drafts[refused, kept[refused]]] = 0.0
    return kept, torch.multinomial(last, num_samples=1).squeeze(1)


@contextlib.contextmanager
def _gqa_in_sdpa() -> Any:
    """Grouped-query attention inside torch's sdpa (`enable_gqa`) for a pass of several queries with a mask,
    where transformers would otherwise copy every cached key and value once per query head sharing it
    (`repeat_kv`): 17 ms against 1.8 ms a layer for 8 rows x 7 queries over 650 columns here
    (docs/BENCHMARKS.md). The same attention; transformers' own switch, set for the pass only."""
    before = os.environ.get("TRANSFORMERS_SDPA_FORCE_GQA")
    os.environ["TRANSFORMERS_SDPA_FORCE_GQA"] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ["TRANSFORMERS_SDPA_FORCE_GQA"]
        else:
            os.environ["TRANSFORMERS_SDPA_FORCE_GQA"] = before


def _speculate(model: Any, prompt_ids: list[list[int]], caches: list[Any], which: list[int], ids: torch.Tensor,
               config: Any, processors: Any, stop: torch.Tensor, max_new: int, lookup: Lookup,
               device: torch.device) -> list[list[int]]:
    """`decode`'s loop with lookup drafts: each pass feeds every live row its last token and its draft,
    keeps what `verify` accepts, and moves each row's cache cursor by that many tokens."""
    rows, longest, k = len(prompt_ids), ids.size(1), lookup.tokens
    buffers, width = _batch_buffers(caches, which, longest - 1 + max_new + k)
    cache = _RaggedBuffers(buffers.keys, buffers.values, width)
    capacity = cache.keys[0].size(2)
    prompt_columns = torch.zeros(rows, capacity, dtype=torch.bool, device=device)
    for r, p in enumerate(prompt_ids):
        prompt_columns[r, width - (len(p) - 1):width] = True
    columns = torch.arange(capacity, device=device)
    drafts_of = _Drafts(lookup, prompt_ids)
    position = torch.tensor([len(p) - 1 for p in prompt_ids], device=device)
    last = ids[:, -1]
    live = torch.arange(rows, device=device)
    stops = set(stop.tolist())
    out: list[list[int]] = [[] for _ in range(rows)]
    while live.numel():
        drafts = [drafts_of.draft(r, max_new - len(out[r]) - 1) for r in live.tolist()]
        m = max(len(d) for d in drafts)
        step_ids = last.new_zeros(live.numel(), m + 1)
        step_ids[:, 0] = last
        for i, d in enumerate(drafts):
            step_ids[i, 1:1 + len(d)] = torch.tensor(d, dtype=step_ids.dtype)
        offsets = torch.arange(m + 1, device=device)
        end = cache.begin(m + 1)
        generated = columns[None, None, :end] - width
        mask = prompt_columns[:, None, :end] | ((generated >= 0)
                                                & (generated <= cache.written[:, None, None] + offsets[None, :, None]))
        mask = _for_attention(model, mask[:, None])
        with _gqa_in_sdpa():
            logits = model(input_ids=step_ids, attention_mask=mask, position_ids=position[:, None] + offsets,
                           past_key_values=cache, use_cache=True, logits_to_keep=m + 1).logits
        scores = torch.stack([processors(ids, logits[:, j].to(dtype=torch.float32)) for j in range(m + 1)], dim=1)
        lengths = torch.tensor([len(d) for d in drafts], device=device)
        kept, following = verify(scores, step_ids[:, 1:], lengths, config.do_sample)
        finished = []
        for i, (r, n, token) in enumerate(zip(live.tolist(), kept.tolist(), following.tolist(), strict=True)):
            new = drafts[i][:n] + [token]
            cut = next((j for j, t in enumerate(new) if t in stops), None)
            new = new[:cut + 1] if cut is not None else new
            out[r].extend(new)
            drafts_of.extend(r, new)
            lookup.emitted += len(new)
            lookup.passes += 1
            finished.append(cut is not None or len(out[r]) >= max_new)
        done = torch.tensor(finished, device=device)
        if bool(done.all()):
            break
        cache.written += kept + 1
        position = position + kept + 1
        last = following
        if bool(done.any()):
            keep = (~done).nonzero().squeeze(1)
            cache.select(keep)
            prompt_columns, position, ids, live, last = (prompt_columns[keep], position[keep], ids[keep],
                                                         live[keep], last[keep])
    drafts_of.remember()
    return out


@torch.no_grad()
def decode(model: Any, prompt_ids: list[list[int]], generation_config: Any,
           device: torch.device | None = None, carry: PrefixCaches | None = None,
           lookup: Lookup | None = None) -> list[list[int]]:
    """Completions of these prompts (token ids, each up to and including its first stop token), as
    `model.generate(generation_config=...)` draws them from the left-padded prompts. Every prompt needs
    two tokens or more. `carry`: prefill by extending the caches of an earlier round (`PrefixCaches`).
    `lookup`: check drafted tokens in each pass (`Lookup`; where the logits processors allow it,
    `speculable`): greedy, the same tokens; sampling, the same distribution with other draws."""
    device = device if device is not None else model.device
    caches, which = prefill(model, prompt_ids, device, carry)
    rows = len(prompt_ids)
    longest = max(len(p) for p in prompt_ids)
    ids = torch.full((rows, longest), 0, dtype=torch.long, device=device)
    for r, p in enumerate(prompt_ids):
        ids[r, longest - len(p):] = torch.tensor(p, device=device)
    config, processors = logits_processors(model, generation_config, ids)
    pad = config._pad_token_tensor
    if pad is not None:
        for r, p in enumerate(prompt_ids):
            ids[r, :longest - len(p)] = pad
    stop = config._eos_token_tensor
    stop = stop.reshape(-1) if stop is not None else torch.empty(0, dtype=torch.long, device=device)
    max_new = config.max_new_tokens if config.max_new_tokens is not None else config.max_length - longest
    if lookup is not None and speculable(processors):
        return _speculate(model, prompt_ids, caches, which, ids, config, processors, stop, max_new, lookup, device)
    cache, width = _batch_buffers(caches, which, longest - 1 + max_new)
    del caches
    # Mask columns: row r's prompt fills the last len(p) - 1 columns before `width`, then every step one.
    allowed = torch.zeros(rows, 1, 1, longest - 1 + max_new, dtype=torch.bool, device=device)
    for r, p in enumerate(prompt_ids):
        allowed[r, 0, 0, width - (len(p) - 1):width] = True
    allowed[:, 0, 0, width:] = True
    allowed = _for_attention(model, allowed)
    position = torch.tensor([[len(p) - 1] for p in prompt_ids], device=device)
    live = torch.arange(rows, device=device)  # the original row of each row still in the batch
    out: list[list[int]] = [[] for _ in range(rows)]
    step_ids = ids[:, -1:]
    for step in range(max_new):
        logits = model(input_ids=step_ids, attention_mask=allowed[:, :, :, :width + step + 1],
                       position_ids=position, past_key_values=cache, use_cache=True, logits_to_keep=1).logits
        scores = processors(ids, logits[:, -1].to(dtype=torch.float32))
        if config.do_sample:
            probs = torch.softmax(scores, dim=-1)
            if live.numel() < rows:  # the rows that left draw their variates too, as in `generate`
                probs = probs.new_ones(rows, probs.size(1)).index_copy_(0, live, probs)
            tokens = torch.multinomial(probs, num_samples=1).squeeze(1)
            if live.numel() < rows:
                tokens = tokens.index_select(0, live)
        else:
            tokens = torch.argmax(scores, dim=-1)
        ids = torch.cat([ids, tokens[:, None]], dim=-1)
        done = torch.isin(tokens, stop)
        for r, t in zip(live.tolist(), tokens.tolist(), strict=True):
            out[r].append(t)
        if bool(done.all()) or step == max_new - 1:
            break
        if bool(done.any()):
            keep = (~done).nonzero().squeeze(1)
            cache.select(keep)
            allowed, position, ids, live = allowed[keep], position[keep], ids[keep], live[keep]
            tokens = tokens[keep]
        step_ids = tokens[:, None]
        position = position + 1
    return out


def prompt_ids(tokenizer: Any, prompts: list[list[dict[str, str]]]) -> tuple[list[str], list[list[int]]]:
    """Each chat prompt rendered by the chat template (generation prompt added) and its token ids, without
    special tokens added again: every evaluation backend and the SFT probe see exactly these tokens."""
    texts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in prompts]
    return texts, [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def complete(model: Any, prompt_ids: list[list[int]], generation_config: Any, pad_token_id: int,
             engine: str = "lean", lookup: Lookup | None = None) -> list[list[int]] | torch.Tensor:
    """Completion tokens of a batch of prompts: `decode` where it covers the model (`supported`), with
    `lookup`'s drafts if given, else `model.generate` on the left-padded batch (also `engine="generate"`:
    the reference the tests compare with). The one greedy-batch path of the `hf` evaluation backend and
    the SFT probe."""
    if engine == "lean" and supported(model):
        return decode(model, prompt_ids, generation_config, lookup=lookup)
    width = max(len(p) for p in prompt_ids)
    input_ids = torch.tensor([[pad_token_id] * (width - len(p)) + p for p in prompt_ids], device=model.device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompt_ids], device=model.device)
    return model.generate(input_ids=input_ids, attention_mask=mask, generation_config=generation_config)[:, width:]
