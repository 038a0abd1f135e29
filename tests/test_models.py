"""Base model resolution: tiny-random determinism, folder reuse, clear errors, the embedded model."""

from __future__ import annotations

import json

import pytest
import torch

from toolrl.config import ModelParams
from toolrl.models import READY_MARKER, ModelError, build_tiny_random, load_model, prepare_base_model


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_tiny_random_is_deterministic_per_seed():
    a, tok = build_tiny_random(seed=0)
    b, _ = build_tiny_random(seed=0)
    c, _ = build_tiny_random(seed=1)
    assert torch.equal(_weights(a), _weights(b))
    assert not torch.equal(_weights(a), _weights(c))
    assert a.config.hidden_size == 64 and a.config.num_hidden_layers == 2
    assert tok.eos_token == "<|im_end|>" and tok.pad_token != tok.eos_token


def test_tiny_random_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_random(seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_prepare_saves_once_and_reloads(tmp_path):
    params = ModelParams(name="tiny-random", seed=3)
    out = prepare_base_model(params, tmp_path / "base")
    assert (out / "config.json").exists() and list(out.glob("*.safetensors"))
    assert json.loads((out / READY_MARKER).read_text())["seed"] == 3
    mtime = (out / "config.json").stat().st_mtime_ns
    assert prepare_base_model(params, out) == out
    assert (out / "config.json").stat().st_mtime_ns == mtime  # reused, not rewritten
    model, tok = load_model(str(out))
    built, _ = build_tiny_random(seed=3)
    assert torch.equal(_weights(model), _weights(built))
    # Other params rebuild the folder.
    prepare_base_model(ModelParams(name="tiny-random", seed=4), out)
    assert json.loads((out / READY_MARKER).read_text())["seed"] == 4


def test_missing_folder_error_names_the_fix(tmp_path):
    with pytest.raises(ModelError, match="does not exist: run the stage"):
        load_model("models/not-there-yet")


def test_broken_folder_error(tmp_path):
    (tmp_path / "junk.txt").write_text("x")
    with pytest.raises(ModelError, match="not a model folder"):
        load_model(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="cannot load model folder"):
        load_model(str(tmp_path))


def test_unreachable_hub_id_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable once, at import: once another test imported it, only the
    # constant makes the lookup fail at once instead of waiting on the network (~40 s in the suite).
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError, match="cannot load model hub id 'no-such-org/no-such-model'"):
        load_model("no-such-org/no-such-model")


@pytest.mark.slow
def test_embedded_model_loads_and_generates(tmp_path):
    out = prepare_base_model(ModelParams(), tmp_path / "base")
    model, tok = load_model(str(out))
    assert model.config.num_hidden_layers == 30  # SmolLM2-135M
    assert getattr(model.config, "quantization_config", None) is None
    inputs = tok.apply_chat_template(
        [{"role": "user", "content": "Say hello."}], add_generation_prompt=True, return_tensors="pt",
        return_dict=True,
    )
    out_ids = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    text = tok.decode(out_ids[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert text.strip(), "the embedded model generated nothing"
