"""What this machine's hardware can do fast, for settings left at `auto`.

bf16 is 2-5x faster than float32 on CPUs with AMX or AVX512-BF16 (docs/BENCHMARKS.md, bench/precision.py: a SmolLM2-135M
forward+backward 14.2 s -> 9.1 s, prefill of 8 x 550 tokens 7.1 s -> 2.2 s) and several times slower where the CPU emulates
it, so `auto` picks it only where the hardware has it.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

Bf16Setting = bool | Literal["auto"]
DtypeSetting = Literal["auto", "float32", "bfloat16", "float16"]


@cache
def bf16_supported() -> bool:
    """True on a CUDA GPU with bf16, or a CPU with AMX tiles or AVX512-BF16 instructions."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported(including_emulation=False)  # T4/V100 emulate it, slowly
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def default_device() -> str:
    """Where a model that no Trainer places runs (the TRM's scorer): the CUDA GPU if there is one, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_bf16(setting: Bf16Setting) -> bool:
    """A training section's `bf16` (true, false or auto) as the bool TrainingArguments takes."""
    return bf16_supported() if setting == "auto" else bool(setting)


def resolve_dtype(setting: DtypeSetting) -> str:
    """A weights dtype (`auto`: bfloat16 where the hardware has it, else float32) as a torch dtype name."""
    if setting != "auto":
        return setting
    return "bfloat16" if bf16_supported() else "float32"


def precision_args(setting: Bf16Setting) -> dict[str, bool]:
    """TrainingArguments fields for `bf16`: transformers accepts bf16 without a GPU only with `use_cpu`."""
    import torch

    bf16 = resolve_bf16(setting)
    return {"bf16": bf16, **({"use_cpu": True} if bf16 and not torch.cuda.is_available() else {})}
