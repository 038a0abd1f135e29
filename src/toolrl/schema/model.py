"""params.yaml `model`: the base model (prepare_model stage)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from toolrl.schema.base import Section


class ModelParams(Section):
    name: str = Field(default="smollm2-135m-instruct",
        description="`smollm2-135m-instruct` (embedded GGUF), `tiny-random`, a hub id, or a local folder.")
    revision: str | None = None
    seed: int = Field(default=0, description="seeds tiny-random's weights")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    output_dir: str = "models/base"
