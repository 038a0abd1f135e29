"""Small curated datasets and params for the training tests (no dependency on /work/shared)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from toolrl import formats
from toolrl.config import Params, apply_overrides, validate

TOOLS = [
    {"name": "get_weather", "description": "Current weather in a city.",
     "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
                    "required": ["city"]}},
    {"name": "convert_currency", "description": "Convert an amount between currencies.",
     "parameters": {"type": "object",
                    "properties": {"amount": {"type": "number"}, "source": {"type": "string"},
                                   "target": {"type": "string"}},
                    "required": ["amount", "source", "target"]}},
]

CITIES = ["Paris", "Lima", "Oslo", "Cairo", "Tokyo", "Quito", "Dakar", "Perth"]


def record(i: int) -> dict[str, Any]:
    """One canonical curated record; every third one answers without a call (irrelevance)."""
    city = CITIES[i % len(CITIES)]
    if i % 3 == 2:
        user = f"Tell me a joke about {city}."
        thought, calls, response = "No tool fits a joke.", [], f"Why did {city} cross the road?"
    elif i % 3 == 1:
        user = f"Convert {10 + i} EUR to USD."
        thought = "The user wants a currency conversion."
        calls = [formats.ToolCall("convert_currency", {"amount": 10 + i, "source": "EUR", "target": "USD"})]
        response = None
    else:
        user = f"What's the weather in {city}?"
        thought, calls, response = "I should look up the weather.", [formats.ToolCall("get_weather", {"city": city})], None
    conversation = [{"role": "user", "content": user}]
    return {
        "id": f"fx-{i}",
        "source": "fixture",
        "tools": TOOLS,
        "conversation": conversation,
        "target": {"thought": thought, "calls": [{"name": c.name, "arguments": c.arguments} for c in calls],
                   "response": response},
        "provenance": {"fixture": True},
        "prompt": formats.prompt_messages(TOOLS, conversation),
        "completion": [{"role": "assistant", "content": formats.render_completion(thought, calls, response)}],
        "ground_truth": formats.ground_truth(thought, calls, response),
    }


def write_curated(folder: Path, train: int = 12, val: int = 4, test: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    start = 0
    for split, n in (("train", train), ("val", val), ("test", test)):
        with (folder / f"{split}.jsonl").open("w") as fh:
            for i in range(start, start + n):
                fh.write(json.dumps(record(i)) + "\n")
        start += n
    return folder


def tiny_params(tmp_path: Path, base_dir: Path, mlflow_uri: str, overrides: list[str] | None = None) -> Params:
    """Params for a seconds-long run of tiny-random in `tmp_path` (every output inside it)."""
    data_dir = write_curated(tmp_path / "data" / "curated")
    raw = {
        "model": {"name": "tiny-random", "output_dir": str(base_dir)},
        "data": {"output_dir": str(data_dir)},
        "tracking": {"tracking_uri": mlflow_uri, "artifact_root": str(tmp_path / "mlartifacts")},
        "sft": {"output_dir": str(tmp_path / "models" / "sft"), "max_steps": 3, "per_device_train_batch_size": 2,
                "max_length": 1024, "save_steps": 2, "probe_prompts": 2, "probe_max_new_tokens": 8,
                "plots_file": str(tmp_path / "reports" / "plots" / "sft_loss.csv"),
                "metrics_file": str(tmp_path / "reports" / "metrics" / "sft.json")},
        "grpo": {"output_dir": str(tmp_path / "models" / "grpo"), "init": "base", "max_steps": 3,
                 "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1, "num_generations": 2,
                 "max_completion_length": 12,
                 "save_steps": 2, "sample_every": 2, "learning_rate": 1e-4,
                 "plots_file": str(tmp_path / "reports" / "plots" / "grpo_rewards.csv"),
                 "metrics_file": str(tmp_path / "reports" / "metrics" / "grpo.json")},
    }
    return validate(apply_overrides(raw, overrides or []), source="test params")
