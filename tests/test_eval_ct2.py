"""The CTranslate2 evaluation backend: the model converted once per content hash, and greedy
completions that are `generate`'s (the reference backend) on the same fp32 weights."""

from __future__ import annotations

import pytest
import torch

from toolrl import formats

TOOLS = [{"name": "get_weather", "description": "Weather in a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


@pytest.fixture(scope="module")
def peaky_model(tiny_model_dir, tmp_path_factory):
    """tiny-random with larger weights: its next token then depends on the context, so agreement
    between two engines means something (tiny-random's own logits are nearly flat)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3)
    out = tmp_path_factory.mktemp("peaky")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(out)
    return out


def prompts() -> list[list[dict[str, str]]]:
    questions = ["Weather in Paris?", "Is it raining in Lima right now, and what about tomorrow morning?", "Hi"]
    return [formats.prompt_messages(TOOLS, [{"role": "user", "content": q}]) for q in questions]


def test_ct2_greedy_completions_are_generates(peaky_model, tmp_path):
    from toolrl.evaluation.generation import CT2Generator, HFGenerator

    hf = HFGenerator(peaky_model, batch_size=2, max_new_tokens=12, dtype="float32").generate(prompts())
    done: list[int] = []
    ct2 = CT2Generator(peaky_model, batch_size=2, max_new_tokens=12, cache_dir=tmp_path).generate(
        prompts(), on_done=lambda idx, texts: done.extend(idx))
    assert ct2 == hf
    assert len(set(hf)) == 3 and all(hf)  # three different, non-empty completions: a real comparison
    assert sorted(done) == [0, 1, 2]


def test_ct2_converts_once_per_weights(peaky_model, tmp_path):
    from toolrl.evaluation.generation import ct2_model

    first = ct2_model(peaky_model, tmp_path)
    stamp = (first / "model.bin").stat().st_mtime_ns
    assert ct2_model(peaky_model, tmp_path) == first and (first / "model.bin").stat().st_mtime_ns == stamp
    assert not list(first.parent.glob("*.tmp"))
