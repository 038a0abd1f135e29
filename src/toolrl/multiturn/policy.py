"""A transformers model as the loop's policy: continue token sequences by one assistant message each.

A thin adapter over what the project already has: the lean decode loop (`toolrl.decode`: each
distinct sequence prefilled once, so the G rollouts of a GRPO group read their long opening once, a
preallocated cache, finished rows leaving the batch; `generate`'s tokens exactly), with each
conversation's cache carried from one message to the next (`decode.PrefixCaches`: a message's prefill
is the tokens appended since the last one, not the whole ~4k-token conversation again), stopping at the
end of the assistant turn (`toolrl.end_of_turn`'s stop tokens). In GRPO the trainer's lookup drafts
(`grpo.lookup_tokens`, `decode.Lookup`) are checked in each pass: greedy the same tokens, sampled the same
distribution with other random draws. Sampling is the `GenerationConfig`
it is given (TRL's own in GRPO) or greedy. Per-token log-probs, a one-token sequence or a model the
loop does not cover go through `model.generate` itself.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import torch

from toolrl.decode import Lookup, PrefixCaches
from toolrl.multiturn.loop import Message


class HFPolicy:
    """`continue_messages` for a causal LM. `generation_config=None` (and `temperature=None`) is greedy;
    `temperature`/`top_p` sample. `seed` gives the policy its own random stream (reproducible, and the
    caller's global RNG untouched); without it sampling draws from torch's global generator, as TRL's
    does. `batch_size` bounds how many sequences one `generate` call takes. `prefixes` holds the caches
    carried between calls (a new store when None); the model's weights must not change while one is
    in use (a trainer passes a store per set of weights)."""

    def __init__(self, model: Any, tokenizer: Any, *, generation_config: Any = None, temperature: float | None = None,
                 top_p: float = 1.0, seed: int | None = None, batch_size: int | None = None, logprobs: bool = False,
                 prefixes: PrefixCaches | None = None, lookup: Lookup | None = None):
        from transformers import GenerationConfig

        from toolrl.end_of_turn import END_OF_TURN, stop_ids

        self.model, self.tokenizer = model, tokenizer
        self.end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
        if generation_config is None:
            sample = bool(temperature)
            generation_config = GenerationConfig(do_sample=sample, temperature=temperature if sample else None,
                                                 top_p=top_p if sample else None)
        self.config = copy.deepcopy(generation_config)
        self.config.eos_token_id = stop_ids(tokenizer)
        self.config.pad_token_id = tokenizer.pad_token_id
        self.stop_ids = set(self.config.eos_token_id)
        self.batch_size = batch_size
        self.logprobs = logprobs
        self.prefixes = prefixes if prefixes is not None else PrefixCaches()
        self.lookup = lookup  # drafts checked in each decode pass (decode.Lookup): the GRPO trainer's or trm_data's
        self._rng_state: list[torch.Tensor] | None = None
        if seed is not None:
            with torch.random.fork_rng(devices=self._devices()):
                torch.manual_seed(seed)
                self._rng_state = self._get_rng()

    def continue_messages(self, sequences: list[list[int]], max_new_tokens: list[int]) -> list[Message]:
        step = self.batch_size or len(sequences)
        self.prefixes.next_round()
        out: list[Message] = []
        for start in range(0, len(sequences), step):
            out += self._batch(sequences[start:start + step], max_new_tokens[start:start + step])
        return out

    def _batch(self, sequences: list[list[int]], limits: list[int]) -> list[Message]:
        from toolrl import decode

        config = copy.deepcopy(self.config)
        config.max_new_tokens = max(limits)
        scores = None
        with self._rng(), torch.no_grad():
            if not self.logprobs and min(len(s) for s in sequences) >= 2 and decode.supported(self.model):
                new = decode.decode(self.model, sequences, config, carry=self.prefixes, lookup=self.lookup)
            else:
                ids, mask = self._padded(sequences)
                config.return_dict_in_generate, config.output_scores = True, self.logprobs
                out = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
                new = out.sequences[:, ids.size(1):].tolist()
                scores = torch.stack(out.scores, dim=1).log_softmax(-1) if self.logprobs else None
        messages = []
        for row, (tokens, limit) in enumerate(zip(new, limits, strict=True)):
            stop = next((i for i, t in enumerate(tokens[:limit]) if t in self.stop_ids), None)
            kept = tokens[: stop + 1] if stop is not None else tokens[:limit]
            logprobs = None
            if scores is not None:  # the log-prob of each chosen token under the (warped) sampling distribution
                logprobs = scores[row, torch.arange(len(kept)), torch.tensor(kept)].tolist()
            messages.append(Message(kept, finished=stop is not None, logprobs=logprobs))
        return messages

    def _padded(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded ids and mask for `generate`."""
        width = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, s in enumerate(sequences):
            ids[row, width - len(s):] = torch.tensor(s)
            mask[row, width - len(s):] = 1
        return ids.to(self.model.device), mask.to(self.model.device)

    # ---------------------------------------------------------------- the policy's own random stream

    def _devices(self) -> list[int]:
        device = self.model.device
        return [device.index or 0] if device.type == "cuda" else []

    def _get_rng(self) -> list[torch.Tensor]:
        return [torch.random.get_rng_state()] + [torch.cuda.get_rng_state(d) for d in self._devices()]

    @contextlib.contextmanager
    def _rng(self) -> Iterator[None]:
        if self._rng_state is None:
            yield
            return
        with torch.random.fork_rng(devices=self._devices()):
            torch.random.set_rng_state(self._rng_state[0])
            for d, state in zip(self._devices(), self._rng_state[1:], strict=True):
                torch.cuda.set_rng_state(state, d)
            yield
            self._rng_state = self._get_rng()
