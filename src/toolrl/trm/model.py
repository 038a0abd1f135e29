"""The TRM: a causal LM backbone with a 2-way classification head, read at the last token of a call.

transformers 5 ships a token-classification head for causal LMs (`LlamaForTokenClassification`,
reached through `AutoModelForTokenClassification`): the decoder's hidden states go through a linear
`score` layer at every position. Labels are -100 everywhere but the last token of the call
(`toolrl.trm.steps.encode_step`), so the head is trained and read there only. Class 1 is a good call;
a call's score is softmax(logits)[1] at that position. Any causal LM the Auto class maps works.

The saved folder is a normal transformers folder (config with id2label, weights, tokenizer) plus
`trm.json` (what it was trained with), loadable with `load_trm`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from toolrl.config import ModelParams, Params

ID2LABEL = {0: "bad_call", 1: "good_call"}
META_FILE = "trm.json"


def backbone_folder(params: Params) -> Path:
    """A model folder for `trm.model.backbone`: the prepared base model, a folder, or any model
    reference (`smollm2-135m-instruct`, `tiny-random`, a hub id), prepared once into the cache."""
    from toolrl.models import CACHE_DIR, prepare_base_model

    ref = params.trm.model.backbone
    if ref == "base":
        folder = Path(params.model.output_dir)
        if not (folder / "config.json").exists():
            raise FileNotFoundError(f"base model folder {folder} has no config.json: run `toolrl model prepare` "
                                    "(or `dvc repro prepare_model`) first, or set trm.model.backbone")
        return folder
    if Path(ref).is_dir():
        return Path(ref)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", ref)
    return prepare_base_model(ModelParams(name=ref, seed=params.model.seed, dtype=params.model.dtype),
                              CACHE_DIR / "trm-backbones" / safe)


def init_trm(folder: str | Path, dtype: str = "float32", seed: int = 0) -> tuple[Any, Any]:
    """(model, tokenizer): the backbone's weights under a freshly initialised 2-way head drawn from `seed`."""
    import torch
    from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer, set_seed

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    config = AutoConfig.from_pretrained(str(folder), num_labels=2, id2label=ID2LABEL,
                                        label2id={v: k for k, v in ID2LABEL.items()})
    config.classifier_dropout = 0.0  # one labelled position per sequence: dropout there only adds noise
    # the Trainer seeds torch only once built, after the model exists: an unseeded head made two runs
    # on byte-identical data train different TRMs
    set_seed(seed)
    try:
        model = AutoModelForTokenClassification.from_pretrained(str(folder), config=config, dtype=getattr(torch, dtype))
    except ValueError as exc:  # an architecture without a token-classification head
        raise ValueError(f"{folder}: no token-classification head for this architecture in transformers "
                         f"({str(exc).splitlines()[0]}); pick a backbone such as a Llama, Qwen2 or Mistral model") from None
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def save_trm(model: Any, tokenizer: Any, folder: str | Path, meta: dict[str, Any]) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return folder


def load_trm(folder: str | Path, device: Any = None, dtype: str = "float32") -> tuple[Any, Any, dict[str, Any]]:
    """(model in eval mode, tokenizer, meta) from a folder written by `save_trm`; `dtype`: a torch dtype name;
    `device`: None is the GPU where there is one, else the CPU (no Trainer places a scorer: before this a
    GPU machine scored the TRM's held-out calls and GRPO+TRM's calls on its CPU)."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from toolrl.hardware import default_device

    folder = Path(folder)
    if not (folder / META_FILE).exists():
        raise FileNotFoundError(f"{folder} is not a trained TRM (no {META_FILE}): run `toolrl trm train` "
                                "(or `dvc repro trm`) first, or point to the folder it wrote")
    model = AutoModelForTokenClassification.from_pretrained(str(folder), dtype=getattr(torch, dtype))
    model.to(default_device() if device is None else device)
    model.eval()
    return model, AutoTokenizer.from_pretrained(str(folder)), json.loads((folder / META_FILE).read_text())


def positive_probs(logits: Any, labels: Any) -> Any:
    """P(good call) at each labelled position of a batch, flattened in order."""
    import torch

    mask = labels != -100
    return torch.softmax(logits[mask].float(), dim=-1)[:, 1]
