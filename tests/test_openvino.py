"""`evaluate.backend: openvino`: the OpenVINO export (toolrl.openvino_export) run by OpenVINO GenAI's
continuous batching gives the greedy completions of transformers' `generate`."""

from __future__ import annotations

import json

import pytest
import torch

from toolrl import formats
from toolrl.config import ConfigError, EvaluateParams

QUESTIONS = ["Weather in Paris?", "What is the weather like in Lima today, and should I take an umbrella with me?",
             "Convert 20 EUR to USD.", "hi"]
TOOLS = [{"name": "get_weather", "description": "Current weather of a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


@pytest.fixture(scope="module")
def sharp_model_dir(tiny_model_dir, tmp_path_factory):
    """tiny-random with larger weights, saved: its tokens depend on the whole context (as in
    tests/test_decode.py), so a wrong position, mask or cache row in the export changes them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.1)
    out = tmp_path_factory.mktemp("models") / "sharp"
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(str(out))
    return out


def _prompts():
    return ([formats.prompt_messages([], [{"role": "user", "content": q}]) for q in QUESTIONS]
            + [formats.prompt_messages(TOOLS, [{"role": "user", "content": q}]) for q in QUESTIONS])


def _params(tmp_path, **openvino) -> EvaluateParams:
    return EvaluateParams(backend="openvino", dtype="float32", max_new_tokens=24, cache_dir=str(tmp_path / "cache"),
                          openvino=openvino)


@pytest.mark.slow
def test_greedy_equals_generate(sharp_model_dir, tmp_path):
    from toolrl.evaluation.generation import HFGenerator, OpenVinoGenerator

    prompts = _prompts()
    stock = HFGenerator(sharp_model_dir, batch_size=3, max_new_tokens=24, engine="generate").generate(prompts)
    assert len(set(stock)) >= 4  # the prompts lead to different tokens: the comparison can fail
    # max_num_seqs 3 and 16-token chunks: prompts queue, are prefilled in pieces beside decoding rows
    generator = OpenVinoGenerator(sharp_model_dir, _params(tmp_path, max_num_seqs=3, max_num_batched_tokens=16))
    done: list[int] = []
    assert generator.generate(prompts, lambda idx, texts: done.extend(idx)) == stock
    assert sorted(done) == list(range(len(prompts)))


def test_export_is_reused_and_atomic(sharp_model_dir, tmp_path):
    from toolrl.openvino_export import DONE_FILE, export

    out = export(sharp_model_dir, tmp_path / "ov")
    assert {"openvino_model.xml", "openvino_tokenizer.xml", "openvino_detokenizer.xml", DONE_FILE} <= {
        p.name for p in out.iterdir()}
    assert not list(tmp_path.glob("ov.tmp*"))  # written beside and renamed into place
    stamp = (out / "openvino_model.bin").stat().st_mtime_ns
    assert export(sharp_model_dir, out) == out
    assert (out / "openvino_model.bin").stat().st_mtime_ns == stamp  # reused, not written again
    (out / DONE_FILE).unlink()  # as after a crash mid-export: done again
    export(sharp_model_dir, out)
    assert json.loads((out / DONE_FILE).read_text())["source"] == str(sharp_model_dir)
    stamp = (out / "openvino_model.bin").stat().st_mtime_ns
    (out / DONE_FILE).write_text(json.dumps({"format": 0}))  # written by an older export: done again
    export(sharp_model_dir, out)
    assert (out / "openvino_model.bin").stat().st_mtime_ns != stamp


def test_export_interface(sharp_model_dir, tmp_path):
    """The stateful interface GenAI reads: four inputs, the cache held as state, SDPA ops."""
    import openvino as ov

    from toolrl.openvino_export import export

    model = ov.Core().read_model(export(sharp_model_dir, tmp_path / "ov") / "openvino_model.xml")
    assert sorted(n for port in model.inputs for n in port.get_names()) == [
        "attention_mask", "beam_idx", "input_ids", "position_ids"]
    assert [n for port in model.outputs for n in port.get_names()] == ["logits"]
    ops = [op.get_type_name() for op in model.get_ops()]
    layers = json.loads((sharp_model_dir / "config.json").read_text())["num_hidden_layers"]
    assert ops.count("ReadValue") == 2 * layers and ops.count("ScaledDotProductAttention") == layers


def test_mask_4d():
    from toolrl.openvino_export import _mask_4d

    mask = _mask_4d(torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]]), new_len=2)
    assert mask.shape == (2, 1, 2, 4)
    assert mask[0, 0].tolist() == [[False, True, True, False], [False, True, True, True]]
    assert mask[1, 0].tolist() == [[True, True, True, False], [True, True, True, True]]
    # a padding query still sees itself (finite softmax); real queries never see the padding
    assert _mask_4d(torch.tensor([[0, 0, 1]]), new_len=3)[0, 0].tolist() == [
        [True, False, False], [False, True, False], [False, False, True]]


def test_unsupported_architecture(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from toolrl.openvino_export import export

    folder = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=49152)).save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(str(folder))
    with pytest.raises(ConfigError, match="'gpt2' model.*evaluate.backend=hf"):
        export(folder, tmp_path / "ov")
    assert not (tmp_path / "ov").exists()


def test_settings_and_properties():
    from toolrl.evaluation.generation import openvino_properties, settings

    hf = settings(EvaluateParams(backend="hf", dtype="float32"))
    ov = settings(EvaluateParams(backend="openvino", dtype="float32"))
    assert ov != hf and ov["backend"] == "openvino"  # its own cache
    # hf's greedy drafts key its cache (bf16 rounding may differ); they are not openvino's or vllm's
    assert hf["lookup_tokens"] == 6 and settings(EvaluateParams(backend="hf", lookup_tokens=0)).get("lookup_tokens") is None
    assert "lookup_tokens" not in ov and settings(EvaluateParams(backend="vllm"))["dtype"] == "auto"
    assert openvino_properties("float32", 2) == {
        "INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": "0",
        "INFERENCE_NUM_THREADS": 2}
    assert openvino_properties("bfloat16", None)["KV_CACHE_PRECISION"] == "bf16"


def test_auto_backend(tmp_path, tiny_model_dir, monkeypatch):
    """`auto` takes openvino for a Llama model on a CPU machine with openvino-genai, hf for any other
    architecture, on CUDA, or without the package; a named backend is kept as it is."""
    import importlib.util

    from toolrl.evaluation.generation import resolve_backend, settings

    assert resolve_backend("auto", tiny_model_dir) == "openvino"
    other = tmp_path / "gpt2"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    assert resolve_backend("auto", other) == "hf"
    assert resolve_backend("auto", tmp_path / "no-config") == "hf"
    assert resolve_backend("hf", tiny_model_dir) == "hf" and resolve_backend("vllm", other) == "vllm"
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino_genai" else find_spec(name, *a))
    assert resolve_backend("auto", tiny_model_dir) == "hf"
    monkeypatch.undo()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_backend("auto", tiny_model_dir) == "hf"
    with pytest.raises(ValueError, match="resolved"):  # a cache key names the backend that made it
        settings(EvaluateParams())


@pytest.mark.slow
def test_evaluation_on_openvino_matches_hf_and_has_its_own_cache(sharp_model_dir, tmp_path):
    """The whole evaluation (BFCL prompts, cache, grades) on the openvino backend: the hf backend's
    completions and grades, cached apart from them; a rerun generates nothing."""
    from toolrl.config import Params
    from toolrl.evaluation.runner import evaluate

    def run(backend: str):
        params = Params.model_validate({"evaluate": {
            "models": [str(sharp_model_dir)], "benchmarks": ["bfcl"], "bfcl_categories": ["simple_python", "multiple"],
            "limit": 2, "max_new_tokens": 16, "dtype": "float32", "backend": backend,
            "cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / backend)}})
        result = evaluate(params, show_progress=False).models[0]
        return result, {col: [(g.completion, g.grade.correct) for g in rows] for col, rows in result.graded.items()}

    hf, hf_rows = run("hf")
    ov, ov_rows = run("openvino")
    assert ov.generated == hf.generated == 4 and ov_rows == hf_rows
    assert (hf.backend, ov.backend) == ("hf", "openvino")
    auto = run("auto")[0]  # the default: resolved to openvino for this Llama model, so its cache
    assert auto.backend == "openvino" and auto.generated == 0
    model_dir = next(p for p in (tmp_path / "cache").iterdir() if p.is_dir() and p.name != "openvino")
    backends = {json.loads(f.read_text())["backend"] for f in model_dir.glob("*/settings.json")}
    assert backends == {"hf", "openvino"}
