"""Export a causal LM folder to the OpenVINO IR that OpenVINO GenAI's pipelines read.

What optimum-intel's `optimum-cli export openvino --task text-generation-with-past` does for a decoder,
in the steps OpenVINO itself provides: trace the model with its KV cache as inputs and outputs
(`openvino.convert_model`, TorchScript frontend), add a `beam_idx` input that reorders the cache,
hide the cache inside the model as state (OpenVINO's make-stateful transformation), and convert the
tokenizer with openvino-tokenizers. GenAI then turns the model's SDPA ops into paged attention for
its continuous batching. optimum-intel is not used because it pins `transformers<5.6` and the stack
runs 5.23 (docs/BENCHMARKS.md, "OpenVINO GenAI against the lean loop").

The folder written holds `openvino_model.xml/.bin` (fp32 weights: precision is the runtime's choice),
`openvino_tokenizer.xml`, `openvino_detokenizer.xml`, and the Hugging Face tokenizer and configs.
Tested on Llama-architecture models (SmolLM2, the tiny test model); another architecture gets a clear
error rather than an export nobody has checked (`SUPPORTED_MODEL_TYPES`).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

from toolrl.config import ConfigError

# Architectures whose export is checked against `generate` (tests/test_openvino.py, the SFT on BFCL).
SUPPORTED_MODEL_TYPES = ("llama",)
DONE_FILE = "export_done.json"
# Raise when the export changes what it writes: an export stamped otherwise is written again.
EXPORT_FORMAT = 1


def _kv_dims(config) -> tuple[int, int]:
    heads = config.num_key_value_heads or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return heads, head_dim


def _mask_4d(attention_mask, new_len: int):
    """(batch, 1, new, past + new) boolean mask: causal, padding masked out. transformers uses a 4D mask as
    given, so the trace holds these few ops instead of its general mask builder's shape logic. A
    position always sees itself, so a padding row has a finite softmax (its output is never read)."""
    import torch

    total = attention_mask.shape[1]
    keys = torch.arange(total, device=attention_mask.device)
    queries = keys[total - new_len:]
    causal = keys[None, :] <= queries[:, None]
    visible = attention_mask.bool()[:, None, None, :] | (keys[None, :] == queries[:, None])[None, None]
    return causal[None, None] & visible


def _trace(model):
    """The model as an OpenVINO model whose inputs are input_ids, attention_mask, position_ids and the
    past keys/values (two per layer), and whose outputs are the logits and the present keys/values."""
    import openvino as ov
    import torch
    from transformers import DynamicCache

    config = model.config
    layers = config.num_hidden_layers

    class WithCacheIO(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, position_ids, *past):
            cache = DynamicCache(config=config)
            # Filled by hand: DynamicCache's own update would concatenate onto an empty tensor, which
            # the trace records as a concat of a rank-1 constant and does not convert.
            for i, layer in enumerate(cache.layers):
                layer.dtype, layer.device = past[2 * i].dtype, past[2 * i].device
                layer.keys, layer.values, layer.is_initialized = past[2 * i], past[2 * i + 1], True
            out = self.inner(input_ids=input_ids, attention_mask=_mask_4d(attention_mask, input_ids.shape[1]),
                             position_ids=position_ids, past_key_values=cache, use_cache=True)
            present = [t for layer in out.past_key_values.layers for t in (layer.keys, layer.values)]
            return (out.logits, *present)

    heads, head_dim = _kv_dims(config)
    batch, past_len, new_len = 2, 3, 4
    mask = torch.ones(batch, past_len + new_len, dtype=torch.long)
    mask[0, 0] = 0
    example = (
        torch.ones(batch, new_len, dtype=torch.long),
        mask,
        torch.arange(past_len, past_len + new_len).expand(batch, new_len).clone(),
        *[torch.randn(batch, heads, past_len, head_dim) for _ in range(2 * layers)],
    )
    # The tracer warns of two shape tests in transformers' sdpa code that it fixes at the example's
    # values: a query longer than 1 (the general branch: keys/values repeated per query group) and
    # "no mask given" (false: the 4D mask always is). Both branches taken serve any length, one-token
    # decoding included (tests/test_openvino.py), so the warnings would only alarm a user.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        ov_model = ov.convert_model(WithCacheIO(model), example_input=example)

    kv_in = [f"past_key_values.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    kv_out = [f"present.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    for port, name in zip(ov_model.inputs, ["input_ids", "attention_mask", "position_ids", *kv_in], strict=True):
        port.get_tensor().set_names({name})
        shape = [-1, heads, -1, head_dim] if name.startswith("past_key_values") else [-1, -1]
        port.get_node().set_partial_shape(ov.PartialShape(shape))
    for port, name in zip(ov_model.outputs, ["logits", *kv_out], strict=True):
        port.get_tensor().set_names({name})
    ov_model.validate_nodes_and_infer_types()
    return ov_model, kv_in, kv_out


def _make_stateful(ov_model, kv_in: list[str], kv_out: list[str]) -> None:
    """The cache becomes model state, reordered by a `beam_idx` input, zero-initialised to the batch
    size of `input_ids`: the model interface GenAI expects (optimum-intel's `patch_stateful_decoder`)."""
    import numpy as np
    import openvino as ov
    from openvino import opset13
    from openvino._offline_transformations import apply_make_stateful_transformation

    beam_idx = opset13.parameter(name="beam_idx", dtype=ov.Type.i32, shape=ov.PartialShape([-1]))
    beam_idx.output(0).get_tensor().add_names({"beam_idx"})
    ov_model.add_parameters([beam_idx])
    for name in kv_in:
        port = ov_model.input(name)
        consumers = port.get_target_inputs()
        gather = opset13.gather(port, beam_idx, opset13.constant(0))
        for consumer in consumers:
            consumer.replace_source_output(gather.output(0))
    ov_model.validate_nodes_and_infer_types()
    apply_make_stateful_transformation(ov_model, dict(zip(kv_in, kv_out, strict=True)))

    input_ids = ov_model.input("input_ids")
    batch = opset13.gather(opset13.shape_of(input_ids, output_type="i64"), opset13.constant([0]),
                           opset13.constant(0))
    for op in ov_model.get_ops():
        if op.get_type_name() != "ReadValue":
            continue
        dims = [d.min_length for d in op.get_output_partial_shape(0)]
        parts = [batch] + [opset13.constant(np.array([d], dtype=np.int64)) for d in dims[1:]]
        zeros = opset13.broadcast(opset13.constant(0.0, dtype=op.get_output_element_type(0)),
                                  opset13.concat(parts, axis=0))
        op.set_arguments([zeros])
    ov_model.validate_nodes_and_infer_types()


def _stamp(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def export(folder: str | Path, out: str | Path) -> Path:
    """Write the OpenVINO export of the model in `folder` to `out` (atomically: a crash leaves no half
    export that a later run would read) and return `out`. A finished export of this format (`EXPORT_FORMAT`) is reused."""
    import openvino as ov
    import torch
    from openvino_tokenizers import convert_tokenizer

    from toolrl.models import load_model

    out = Path(out)
    if _stamp(out / DONE_FILE).get("format") == EXPORT_FORMAT:
        return out
    model, tokenizer = load_model(str(folder), dtype="float32")
    model_type = model.config.model_type
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ConfigError(
            f"evaluate.backend=openvino: the export is checked for {', '.join(SUPPORTED_MODEL_TYPES)} models, and "
            f"{folder} is a {model_type!r} model; set evaluate.backend=hf (or add the architecture to "
            "toolrl.openvino_export.SUPPORTED_MODEL_TYPES once tests/test_openvino.py passes for it)")
    model.eval()
    # sdpa: traced into OpenVINO's ScaledDotProductAttention ops, which GenAI turns into paged attention.
    model.set_attn_implementation("sdpa")

    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with torch.no_grad():
        ov_model, kv_in, kv_out = _trace(model)
    _make_stateful(ov_model, kv_in, kv_out)
    ov.save_model(ov_model, tmp / "openvino_model.xml", compress_to_fp16=False)
    ov_tokenizer, ov_detokenizer = convert_tokenizer(tokenizer, with_detokenizer=True)
    ov.save_model(ov_tokenizer, tmp / "openvino_tokenizer.xml")
    ov.save_model(ov_detokenizer, tmp / "openvino_detokenizer.xml")
    tokenizer.save_pretrained(tmp)
    model.config.save_pretrained(tmp)
    model.generation_config.save_pretrained(tmp)
    (tmp / DONE_FILE).write_text(json.dumps({"source": str(folder), "format": EXPORT_FORMAT,
                                             "openvino": ov.__version__}))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out
