"""`auto` precision settings resolve from what the hardware can do, and explicit settings win."""

from __future__ import annotations

import pytest

from toolrl import hardware
from toolrl.config import ConfigError, validate


@pytest.fixture
def fast_bf16(monkeypatch):
    def set_to(value: bool) -> None:
        monkeypatch.setattr(hardware, "bf16_supported", lambda: value)
    return set_to


@pytest.mark.parametrize("supported", [True, False])
def test_auto_follows_the_hardware(fast_bf16, supported):
    fast_bf16(supported)
    assert hardware.resolve_bf16("auto") is supported
    assert hardware.resolve_dtype("auto") == ("bfloat16" if supported else "float32")


def test_explicit_settings_win(fast_bf16):
    fast_bf16(False)
    assert hardware.resolve_bf16(True) is True
    assert hardware.resolve_dtype("bfloat16") == "bfloat16"
    fast_bf16(True)
    assert hardware.resolve_bf16(False) is False
    assert hardware.resolve_dtype("float32") == "float32"


def test_cpu_bf16_training_needs_use_cpu(fast_bf16):
    import torch

    fast_bf16(True)
    args = hardware.precision_args("auto")
    assert args["bf16"] is True
    assert args.get("use_cpu", False) is (not torch.cuda.is_available())
    assert hardware.precision_args(False) == {"bf16": False}


def test_real_probe_returns_a_bool():
    hardware.bf16_supported.cache_clear()
    assert isinstance(hardware.bf16_supported(), bool)


def test_params_accept_auto_and_reject_nonsense():
    p = validate({"sft": {"bf16": "auto"}, "evaluate": {"dtype": "auto"}})
    assert p.sft.bf16 == "auto" and p.evaluate.dtype == "auto"
    assert validate({"grpo": {"bf16": False}}).grpo.bf16 is False
    with pytest.raises(ConfigError, match="bf16"):
        validate({"grpo": {"bf16": "sometimes"}})
