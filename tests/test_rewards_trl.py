"""The reward as TRL reward functions: one per component, the ground truth from the dataset column,
the step from the trainer state; and a real GRPOTrainer step logging each component's mean."""

from __future__ import annotations

import json

import pytest
from transformers import TrainerState

from toolrl.config import RewardParams
from toolrl.rewards import VARIANTS, Variant, register, score
from toolrl.rewards.schedules import LengthTarget, TwoStage
from toolrl.rewards.trl import reward_functions, reward_weights

GT = '<think> t </think>\n<tool_call>\n{"name": "f", "parameters": {"a": 1}}\n</tool_call>'
GOOD = GT
HALF = '<think> t </think>\n<tool_call>\n{"name": "f", "parameters": {"a": 2}}\n</tool_call>'


def as_chat(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def test_one_function_per_component_named_for_trl():
    funcs = reward_functions(RewardParams())
    assert [f.__name__ for f in funcs] == ["format_reward", "correctness_reward"]
    length_funcs = reward_functions(RewardParams(variant="dynamic_length", weights={"length": 0.5}))
    assert [f.__name__ for f in length_funcs] == ["format_reward", "correctness_reward", "length_reward"]
    assert reward_weights(RewardParams(variant="dynamic_length", weights={"length": 0.5})) == [1.0, 1.0, 0.5]
    assert reward_weights(RewardParams(weights={"format": 2})) == [2.0, 1.0]


def test_components_read_ground_truth_column_and_global_step():
    fmt, cor = reward_functions(RewardParams(variant="two_stage"))
    completions = [as_chat(GOOD), as_chat(HALF), as_chat("nonsense")]
    gts = [GT] * 3
    for step in (3, 30):
        state = TrainerState(global_step=step)
        kwargs = dict(prompts=[[]] * 3, completions=completions, ground_truth=gts, trainer_state=state,
                      completion_ids=[[1]] * 3, log_metric=lambda *a: None, log_extra=lambda *a: None)
        got_fmt, got_cor = fmt(**kwargs), cor(**kwargs)
        expected = [score(c[0]["content"], GT, variant="two_stage", step=step) for c in completions]
        assert got_fmt == [e.format for e in expected]
        assert got_cor == [e.correctness for e in expected]
    # two_stage: correctness max is 1 before step 30 and 3 from it; format halves at 30
    assert got_cor[0] == 3.0 and got_fmt[0] == 0.5


def test_plain_text_completions_and_missing_column():
    fmt, cor = reward_functions()
    assert cor(prompts=["p"], completions=[GOOD], ground_truth=[GT]) == [3.0]
    with pytest.raises(ValueError, match="ground_truth` dataset column"):
        fmt(prompts=["p"], completions=[GOOD])


def test_batch_is_scored_once_for_all_components():
    fmt, cor = reward_functions()
    kwargs = dict(completions=[GOOD, HALF], ground_truth=[GT, GT], trainer_state=TrainerState(global_step=1))
    fmt(**kwargs)
    first = fmt.batch._scores
    cor(**kwargs)
    assert cor.batch._scores is first  # the second component reused the first one's pass
    fmt(completions=[HALF], ground_truth=[GT], trainer_state=TrainerState(global_step=2))
    assert fmt.batch._scores is not first


def test_schema_variant_reads_tools_column():
    gt = '<think> t </think>\n<tool_call>\n{"name": "f", "parameters": {"a": "1"}}\n</tool_call>'
    pd = '<think> t </think>\n<tool_call>\n{"name": "f", "parameters": {"a": 1}}\n</tool_call>'
    tools = [{"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}]
    _, cor = reward_functions(RewardParams(variant="schema_match"))
    assert cor(completions=[pd, pd], ground_truth=[gt, gt], tools=[tools, json.dumps(tools)]) == [3.0, 3.0]
    assert cor(completions=[pd], ground_truth=[gt]) == [1.0]  # no tools column: reference values


@pytest.fixture
def step_switch_variant():
    """dynamic_length whose correctness range is a third until step 1: shows the trainer's step."""
    variant = register(Variant("test_step_switch", "test only", length=LengthTarget(384.0, 640.0),
                               correctness_schedule=TwoStage(switch_step=1, early_divisor=3.0)))
    yield variant.name
    VARIANTS.pop(variant.name)


@pytest.mark.slow
def test_grpo_trainer_logs_each_component(tiny_model_dir, tmp_path, step_switch_variant):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    params = RewardParams(variant=step_switch_variant, weights={"length": 0.5})
    prompt = [{"role": "user", "content": "Call f with a=1."}]
    data = Dataset.from_list([{"prompt": prompt, "ground_truth": GT}] * 4)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=2, num_generations=2,
        max_completion_length=8, logging_steps=1, report_to=[], save_strategy="no", use_cpu=True,
        reward_weights=reward_weights(params),
    )
    trainer = GRPOTrainer(model=model, reward_funcs=reward_functions(params), args=args,
                          train_dataset=data, processing_class=tokenizer)
    trainer.train()
    logged = {k for entry in trainer.state.log_history for k in entry}
    for name in ("format_reward", "correctness_reward", "length_reward"):
        assert f"rewards/{name}/mean" in logged
    # random tokens: no think block and no call block -> format 0, length 0 and the correctness
    # minimum: -3 / 3 for the batch generated at global step 0, -3 at global step 1
    first, second = (e for e in trainer.state.log_history if "reward" in e)
    assert first["rewards/correctness_reward/mean"] == pytest.approx(-1.0)
    assert second["rewards/correctness_reward/mean"] == pytest.approx(-3.0)
    assert second["reward"] == pytest.approx(-3.0)
