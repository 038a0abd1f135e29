"""Generation backends: turn chat prompts into completions, greedily, stopping at the end of the turn.

- `HFGenerator` (CPU or GPU, the reference): batches of prompts decoded greedily with the end of the
  assistant turn (`<|im_end|>`, the tokenizer's eos) as stop token, by toolrl.decode's lean loop (each prompt
  prefilled alone, a preallocated cache, a finished completion leaving the batch, `evaluate.lookup_tokens`
  drafts checked in each pass): the tokens of
  batched `model.generate` with left padding (tests/test_decode.py), which it falls back to for a model
  the loop does not cover (`decode.supported`). Prompts are sorted by length so a batch holds prompts
  of similar length, and put back in order after.
- `OpenVinoGenerator` (CPU, `evaluate.backend: openvino`, and what `auto` picks on a CPU for a Llama
  model): the same token ids queued in OpenVINO GenAI's continuous batching pipeline, on an export of
  the model (toolrl.openvino_export, cached per model hash); ~1.9x the hf backend's cases/s here,
  greedy completions identical (tests/test_openvino.py, docs/BENCHMARKS.md). Completions are reported
  as they finish.
- `VllmGenerator` (GPU, `evaluate.backend: vllm`): the same prompts, tokenized by the same tokenizer
  and chat template, handed to `vllm.LLM.generate` as token ids with greedy `SamplingParams`. vLLM is
  imported only when this backend is chosen.

All take prompts as chat messages, render them with the tokenizer's chat template (generation
prompt added), and return the completion text only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from toolrl.config import ConfigError, EvaluateParams
from toolrl.decode import prompt_ids
from toolrl.end_of_turn import END_OF_TURN, cut_at_end_of_turn, stop_ids
from toolrl.hardware import resolve_dtype

# Called as completions come in: the indices (into `prompts`) of those just finished, and their text.
# The runner caches them right away, so a stopped evaluation keeps every batch it finished.
OnDone = Callable[[list[int], list[str]], None]


class Generator(Protocol):
    def generate(self, prompts: list[list[dict[str, str]]], on_done: OnDone | None = None) -> list[str]: ...

    def close(self) -> None: ...


def settings(ev: EvaluateParams) -> dict[str, Any]:
    """What changes the completions of greedy decoding (the cache key); batch size does not. The backend
    must be resolved (`resolve_backend`): `auto` names no backend."""
    if ev.backend == "auto":
        raise ValueError("settings() needs the backend resolved per model: resolve_backend(ev.backend, folder)")
    out: dict[str, Any] = {"backend": ev.backend, "max_new_tokens": ev.max_new_tokens, "decoding": "greedy"}
    if ev.backend in ("hf", "openvino"):
        out["dtype"] = resolve_dtype(ev.dtype)
    else:
        out["dtype"] = ev.vllm.dtype
        out["max_model_len"] = ev.vllm.max_model_len
    if ev.backend == "hf" and ev.lookup_tokens:  # greedy drafts: the same tokens but for bf16 rounding
        out["lookup_tokens"] = ev.lookup_tokens
    return out


class HFGenerator:
    def __init__(self, folder: str | Path, batch_size: int, max_new_tokens: int, dtype: str = "float32",
                 threads: int | None = None, engine: str = "lean", lookup_tokens: int = 0):
        import torch

        from toolrl import decode
        from toolrl.models import load_model

        if threads:
            torch.set_num_threads(threads)

        self.model, self.tokenizer = load_model(str(folder), dtype=dtype)
        self.model.eval()
        self.tokenizer.padding_side = "left"
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.stop_ids = stop_ids(self.tokenizer)
        self._torch = torch
        # "lean": toolrl.decode's loop; "generate": transformers' (the reference the tests compare with)
        self.engine = engine if decode.supported(self.model) else "generate"
        # greedy lookup drafts (the lean engine only): one pool of completions for the model's evaluation
        self.lookup = decode.Lookup(lookup_tokens) if lookup_tokens and self.engine == "lean" else None

    def render(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate(self, prompts: list[list[dict[str, str]]], on_done: OnDone | None = None) -> list[str]:
        from transformers import GenerationConfig

        from toolrl.decode import complete

        token_ids = prompt_ids(self.tokenizer, prompts)[1]
        order = sorted(range(len(token_ids)), key=lambda i: -len(token_ids[i]))
        config = GenerationConfig(
            do_sample=False,
            max_new_tokens=self.max_new_tokens,
            eos_token_id=self.stop_ids,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        out: list[str] = [""] * len(token_ids)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            with self._torch.inference_mode():
                new_tokens = complete(self.model, [token_ids[i] for i in batch], config,
                                      self.tokenizer.pad_token_id, self.engine, self.lookup)
            for i, row in zip(batch, new_tokens, strict=True):
                out[i] = cut_at_end_of_turn(self.tokenizer.decode(row, skip_special_tokens=True))
            if on_done:
                on_done(batch, [out[i] for i in batch])
        return out

    def close(self) -> None:
        del self.model


def openvino_properties(dtype: str, threads: int | None) -> dict[str, Any]:
    """The CPU plugin's settings: compute and KV cache in the weights' precision (`evaluate.dtype`), no
    int8 quantization of activations. The plugin's LLM defaults (u8 cache, int8 activations) were no
    faster here and changed 5 of 60 greedy completions (docs/BENCHMARKS.md)."""
    precision = {"float32": "f32", "bfloat16": "bf16"}[dtype]
    props: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision, "KV_CACHE_PRECISION": precision,
                             "DYNAMIC_QUANTIZATION_GROUP_SIZE": "0"}
    if threads:
        props["INFERENCE_NUM_THREADS"] = threads
    return props


class OpenVinoGenerator:
    """OpenVINO GenAI's continuous batching on the CPU: every prompt queued at once, greedy, each completion
    handed to `on_done` as soon as it finishes (so a stopped evaluation keeps what was done)."""

    def __init__(self, folder: str | Path, ev: EvaluateParams):
        try:
            import openvino_genai
        except ImportError:
            raise ConfigError("evaluate.backend=openvino needs openvino-genai: run `bash infra/bootstrap.sh` "
                              "(it is in the project's dependencies), or set evaluate.backend=hf") from None
        from transformers import AutoTokenizer

        from toolrl.evaluation.references import content_hash
        from toolrl.openvino_export import export

        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        exported = export(folder, Path(ev.cache_dir) / "openvino" / content_hash(folder, ev.cache_dir)[:16])
        scheduler = openvino_genai.SchedulerConfig()
        scheduler.max_num_seqs = ev.openvino.max_num_seqs
        scheduler.max_num_batched_tokens = ev.openvino.max_num_batched_tokens
        scheduler.cache_size = ev.openvino.cache_size_gb  # GB; OpenVINO reads 0 as "grow as needed"
        properties = openvino_properties(resolve_dtype(ev.dtype), ev.threads)
        self.pipe = openvino_genai.ContinuousBatchingPipeline(str(exported), scheduler, "CPU", properties)
        self.config = openvino_genai.GenerationConfig()
        self.config.max_new_tokens = ev.max_new_tokens
        self.config.do_sample = False
        self.config.stop_token_ids = set(stop_ids(self.tokenizer))
        self._genai = openvino_genai

    def generate(self, prompts: list[list[dict[str, str]]], on_done: OnDone | None = None) -> list[str]:
        import numpy as np
        import openvino

        status = self._genai.GenerationStatus
        # Token ids from the Hugging Face tokenizer, as the other backends: the prompts are the same tokens.
        token_ids = prompt_ids(self.tokenizer, prompts)[1]
        handles = {}
        for i, ids in enumerate(token_ids):
            handles[i] = self.pipe.add_request(i, openvino.Tensor(np.array([ids], dtype=np.int64)), self.config)
        out: list[str] = [""] * len(token_ids)
        while handles:
            if not self.pipe.has_non_finished_requests():
                raise RuntimeError(f"OpenVINO GenAI stopped with {len(handles)} prompts unfinished; set "
                                   "evaluate.backend=hf to evaluate this model")
            self.pipe.step()
            finished = [i for i, h in handles.items() if h.get_status() != status.RUNNING]
            for i in finished:
                handle = handles.pop(i)
                if handle.get_status() != status.FINISHED:
                    raise RuntimeError(f"OpenVINO GenAI did not finish prompt {i} ({handle.get_status()}); "
                                       "set evaluate.backend=hf to evaluate this model")
                ids = handle.read_all()[0].generated_ids
                out[i] = cut_at_end_of_turn(self.tokenizer.decode(ids, skip_special_tokens=True))
            if finished and on_done:
                on_done(finished, [out[i] for i in finished])
        return out

    def close(self) -> None:
        del self.pipe


class VllmGenerator:
    """vLLM offline inference (GPU). Not exercised on the CPU machines the project is developed on."""

    def __init__(self, folder: str | Path, ev: EvaluateParams, seed: int = 0):
        try:
            from vllm import LLM, SamplingParams
        except ImportError:
            raise ConfigError(
                "evaluate.backend=vllm needs the vllm package on a CUDA machine: `pip install -e .[gpu]`, "
                "or set evaluate.backend=hf"
            ) from None
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.llm = LLM(
            model=str(folder),
            tokenizer=str(folder),
            dtype=ev.vllm.dtype,
            tensor_parallel_size=ev.vllm.tensor_parallel_size,
            gpu_memory_utilization=ev.vllm.gpu_memory_utilization,
            max_model_len=ev.vllm.max_model_len,
            enforce_eager=ev.vllm.enforce_eager,
            seed=seed,
        )
        self.sampling = SamplingParams(
            temperature=0.0,
            max_tokens=ev.max_new_tokens,
            stop=[END_OF_TURN],
            stop_token_ids=stop_ids(self.tokenizer),
            skip_special_tokens=True,
        )

    def generate(self, prompts: list[list[dict[str, str]]], on_done: OnDone | None = None) -> list[str]:
        # Token ids, not text: vLLM would otherwise tokenize again and might add a BOS token the HF
        # path does not, so both backends see exactly the same prompt.
        inputs = [{"prompt_token_ids": ids} for ids in prompt_ids(self.tokenizer, prompts)[1]]
        outputs = self.llm.generate(inputs, self.sampling, use_tqdm=True)
        texts = [cut_at_end_of_turn(o.outputs[0].text) for o in outputs]
        if on_done:
            on_done(list(range(len(prompts))), texts)
        return texts

    def close(self) -> None:
        del self.llm


def resolve_backend(setting: str, folder: str | Path) -> str:
    """The backend a model is evaluated on: `setting` unless it is `auto`, which takes openvino where it
    is installed, the machine has no CUDA (OpenVINO runs here on the CPU) and the model's architecture is
    one the export is checked for; hf otherwise (the reference, which covers every model)."""
    if setting != "auto":
        return setting
    import importlib.util

    import torch

    from toolrl.openvino_export import SUPPORTED_MODEL_TYPES

    if torch.cuda.is_available() or importlib.util.find_spec("openvino_genai") is None:
        return "hf"
    config = Path(folder) / "config.json"
    model_type = json.loads(config.read_text()).get("model_type") if config.is_file() else None
    return "openvino" if model_type in SUPPORTED_MODEL_TYPES else "hf"


def make_generator(folder: str | Path, ev: EvaluateParams) -> Generator:
    """The generator of `ev.backend` (resolved: `auto` picks per model with `resolve_backend`)."""
    backend = resolve_backend(ev.backend, folder)
    if backend == "vllm":
        return VllmGenerator(folder, ev)
    if backend == "openvino":
        return OpenVinoGenerator(folder, ev)
    return HFGenerator(folder, ev.batch_size, ev.max_new_tokens, resolve_dtype(ev.dtype), ev.threads,
                       lookup_tokens=ev.lookup_tokens)
