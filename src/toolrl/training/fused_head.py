"""TRL's fused LM head, scoring only the labelled positions on every device.

TRL 1.16's `fused_lm_head=True` (SFTTrainer's loss, GRPO's log-probs) projects the hidden states through
the LM head in tiles and returns per-token log-probs. On CUDA and XPU it scores only the positions whose
label is not -100 ("compact"); elsewhere it scores every position and masks the result, so that tile
shapes stay fixed for compilers that would recompile on each new shape (Neuron). An eager CPU has no
such compiler, and there the full head costs most: an SFT step of 4 BFCL examples (~3,200 positions,
~400 of them completion tokens) spent half its time in it (docs/BENCHMARKS.md). Compact scoring is the
same loss and gradient up to rounding (masked positions contribute exact zeros either way;
tests/test_sft_trainer.py).

`compact_lm_head()` turns it on around our trainers' loss passes only (toolrl.training.sft_trainer, the
shared-prefix GRPO passes): TRL's own path (`grpo.shared_prefix: false`, the benchmarks' stock trainers)
keeps TRL's behaviour. It swaps the private function TRL 1.16 reads for this choice
(`trl.trainer.utils._use_triton`; its kernels read their own copy), pinned with TRL in pyproject.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import trl.trainer.utils as trl_utils


@contextmanager
def compact_lm_head() -> Iterator[None]:
    """Within this block, TRL's fused LM head scores only labelled positions on CPU too."""
    on_triton = trl_utils._use_triton  # the one switch TRL reads to choose compact scoring

    def compact(device: Any) -> bool:
        return device.type == "cpu" or on_triton(device)

    trl_utils._use_triton = compact
    try:
        yield
    finally:
        trl_utils._use_triton = on_triton
