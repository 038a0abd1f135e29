"""The completion cache: a rerun generates nothing, a new model or a higher limit only what is new."""

from __future__ import annotations

import json

import pytest

from toolrl.config import ModelParams, Params
from toolrl.evaluation.generation import make_generator
from toolrl.evaluation.runner import evaluate
from toolrl.models import prepare_base_model


class CountingGenerator:
    """The real generator, counting the prompts it is asked to complete."""

    def __init__(self, inner, log):
        self.inner, self.log = inner, log

    def generate(self, prompts, on_done=None):
        self.log.append(len(prompts))
        return self.inner.generate(prompts, on_done)

    def close(self):
        self.inner.close()


@pytest.fixture
def api_bank_file(tmp_path):
    path = tmp_path / "level-1-api_processed.json"
    path.write_text(json.dumps([
        {"system": "Tools: 1. Name: ToolA", "user": "<user> use tool a </user>",
         "answer": "{'name': 'ToolA', 'parameters': {'q': 'x'}}", "other": {}},
        {"system": "Tools: 1. Name: ToolB", "user": "<user> use tool b </user>",
         "answer": "{'name': 'ToolB', 'parameters': {}}", "other": {}},
        {"system": "Tools: 1. Name: ToolC", "user": "<user> use tool c </user>",
         "answer": "{'name': 'ToolC', 'parameters': {}}", "other": {}},
    ]))
    return path


def run(tmp_path, models, api_bank_file, limit=2, backend="auto"):
    params = Params.model_validate({"evaluate": {
        "models": models, "benchmarks": ["bfcl", "api_bank"], "bfcl_categories": ["simple_python", "irrelevance"],
        "api_bank_paths": [str(api_bank_file)], "limit": limit, "max_new_tokens": 8, "batch_size": 2,
        "backend": backend,
        "cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "reports")}})
    log: list[int] = []
    results = evaluate(params, lambda folder, ev: CountingGenerator(make_generator(folder, ev), log),
                       show_progress=False)
    return results, log


def completions(result):
    return {col: [g.completion for g in rows] for col, rows in result.graded.items()}


def test_rerun_generates_nothing_and_new_work_only_for_what_is_new(tiny_model_dir, tmp_path, api_bank_file):
    other = prepare_base_model(ModelParams(name="tiny-random", seed=1), tmp_path / "other")
    first, log = run(tmp_path, [str(tiny_model_dir)], api_bank_file)
    assert first.generated == 6 and sum(log) == 6

    again, log = run(tmp_path, [str(tiny_model_dir)], api_bank_file)
    assert again.generated == 0 and log == []  # the model is not even loaded
    assert completions(again.models[0]) == completions(first.models[0])
    assert [g.grade for rows in again.models[0].graded.values() for g in rows] == \
        [g.grade for rows in first.models[0].graded.values() for g in rows]

    both, log = run(tmp_path, [str(tiny_model_dir), str(other)], api_bank_file)
    assert [m.generated for m in both.models] == [0, 6] and sum(log) == 6

    more, log = run(tmp_path, [str(tiny_model_dir)], api_bank_file, limit=3)
    assert more.generated == 3 and sum(log) == 3  # one more case in each of the 3 columns
    assert {col: c[:2] for col, c in completions(more.models[0]).items()} == completions(first.models[0])


class StoppedAfterFirstBatch:
    """The real generator, stopped (as by Ctrl-C) once its first batch is reported."""

    def __init__(self, inner):
        self.inner = inner

    def generate(self, prompts, on_done=None):
        def stop_after(indices, texts):
            on_done(indices, texts)
            raise KeyboardInterrupt

        return self.inner.generate(prompts, stop_after)

    def close(self):
        self.inner.close()


def test_a_stopped_evaluation_keeps_every_batch_it_finished(tiny_model_dir, tmp_path, api_bank_file):
    """Categories are generated in one pass (full batches across them); each batch is cached as it ends."""
    params = Params.model_validate({"evaluate": {
        "models": [str(tiny_model_dir)], "benchmarks": ["bfcl", "api_bank"],
        "bfcl_categories": ["simple_python", "irrelevance"], "api_bank_paths": [str(api_bank_file)], "limit": 2,
        "max_new_tokens": 8, "batch_size": 4, "backend": "hf", "cache_dir": str(tmp_path / "cache"),
        "output_dir": str(tmp_path / "reports")}})  # hf: its batches of 4 (openvino reports each case)
    with pytest.raises(KeyboardInterrupt):
        evaluate(params, lambda folder, ev: StoppedAfterFirstBatch(make_generator(folder, ev)), show_progress=False)
    log: list[int] = []
    again = evaluate(params, lambda folder, ev: CountingGenerator(make_generator(folder, ev), log),
                     show_progress=False)
    assert log == [2]  # 6 cases: the first batch of 4 (spanning categories) was kept, 2 are left
    assert again.models[0].generated == 2
    fresh, _ = run(tmp_path / "fresh", [str(tiny_model_dir)], api_bank_file, backend="hf")
    assert completions(again.models[0]) == completions(fresh.models[0])
