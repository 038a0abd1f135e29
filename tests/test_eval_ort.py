"""`evaluate.backend: ort`: onnxruntime-genai's greedy completions equal transformers' `generate` on the
same fp32 weights, in right-padded batches of prompts of different lengths; the export is built once per
model content; a model the builder cannot export is a plain error."""

from __future__ import annotations

import pytest

from toolrl import formats
from toolrl.config import ConfigError, EvaluateParams

pytest.importorskip("onnxruntime_genai")

QUESTIONS = ["What is the weather in Paris today?", "hi",
             "Convert 12 miles to kilometres, then tell me the result rounded to two decimals, please."]


def test_ort_completions_equal_generate(tiny_model_dir, tmp_path):
    from toolrl.evaluation.generation import HFGenerator, make_generator, settings

    ev = EvaluateParams(backend="ort", batch_size=2, max_new_tokens=12, cache_dir=str(tmp_path / "cache"), threads=1)
    prompts = [formats.prompt_messages([], [{"role": "user", "content": q}]) for q in QUESTIONS]
    ort = make_generator(tiny_model_dir, ev)
    done: list[int] = []
    texts = ort.generate(prompts, lambda idx, _: done.extend(idx))
    stock = HFGenerator(tiny_model_dir, batch_size=1, max_new_tokens=12, engine="generate")
    assert texts == stock.generate(prompts)
    assert sorted(done) == [0, 1, 2] and any(texts)
    assert settings(ev) == {"backend": "ort", "max_new_tokens": 12, "decoding": "greedy", "dtype": "float32"}

    exports = list((tmp_path / "cache" / "onnx").iterdir())
    assert [p.name.endswith("-fp32-cpu") for p in exports] == [True]
    stamp = (exports[0] / "model.onnx").stat().st_mtime_ns
    make_generator(tiny_model_dir, ev)  # the same content: the export is reused, not rebuilt
    assert (exports[0] / "model.onnx").stat().st_mtime_ns == stamp


def test_ort_export_failure_is_a_plain_error(tmp_path):
    from toolrl.evaluation.onnx_export import exported

    folder = tmp_path / "not_a_model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "no_such_architecture"}')
    (folder / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(ConfigError, match="(?s)could not export .*evaluate.backend=hf"):
        exported(folder, tmp_path / "cache")
    assert not any((tmp_path / "cache" / "onnx").glob("*-fp32-cpu"))
