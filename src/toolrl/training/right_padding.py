"""Right-padded training batches need no padding mask under causal attention.

With padding on the right, every real token comes before its row's padding, so causal attention alone
keeps real tokens from seeing it: the padding mask changes only the outputs at padded positions, which
no loss reads (SFT's labels and the TRM's labelled positions are real tokens). Without the mask,
transformers' sdpa attention runs the causal kernel (`is_causal`), which skips the blocks above the
diagonal; with it, the CPU flash kernel computes every block and masks them: an SFT batch's attention
forward and backward took 104 ms a layer against 63 ms, an SFT step 1.27x and a TRM step 1.27-1.32x
(docs/BENCHMARKS.md). Positions are the same either way (0, 1, ... from the left). Same numbers at the
real positions (tests/test_sft_trainer.py; for the TRM, tests/test_trm_steps.py). Only for causal
models: a bidirectional encoder (a BERT-like TRM backbone) would let real tokens see the padding, so
it keeps its mask.
"""

from __future__ import annotations

from typing import Any


def is_right_padded(mask: Any) -> bool:
    """A (batch, length) 0/1 mask whose rows are ones, then zeros: padding only on the right."""
    return (mask.dim() == 2 and bool(((mask == 0) | (mask == 1)).all()) and bool(mask[:, 0].all())
            and bool((mask[:, 1:] <= mask[:, :-1]).all()))


def is_causal(model: Any) -> bool:
    """Every attention module of `model` says it is causal (transformers' `is_causal` attribute)."""
    flags = [m.is_causal for m in model.modules() if isinstance(getattr(m, "is_causal", None), bool)]
    return bool(flags) and all(flags)


def _drop_mask(_module: Any, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
    mask = kwargs.get("attention_mask")
    if mask is not None and kwargs.get("past_key_values") is None and is_right_padded(mask):
        kwargs = {**kwargs, "attention_mask": None}
    return args, kwargs


def causal_without_right_padding_mask(model: Any) -> Any:
    """Make `model`'s forward drop a right-padded batch's padding mask (left padding, as in generation,
    and passes with a cache keep theirs). Returns the hook's handle, or None for a model that is not
    causal throughout (nothing changes there)."""
    if not is_causal(model):
        return None
    return model.register_forward_pre_hook(_drop_mask, with_kwargs=True)
