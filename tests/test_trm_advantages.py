"""The advantage arithmetic of TRM-guided GRPO on hand-made groups; the outcome advantages against a
stock TRL GRPOTrainer, the group normalisation against TRL's own `nanstd`."""

from __future__ import annotations

import pytest
import torch

from toolrl.trm.advantages import (
    EPS,
    call_advantages,
    multi_call_group_share,
    outcome_advantages,
    token_advantages,
)


def z(values: list[float]) -> list[float]:
    """Values normalised as TRL 1.16 normalises a group of rewards, (v - mean) / (std + 1e-4), with
    TRL's own unbiased `nanstd` (trl/trainer/utils.py); the formula is inline in
    `GRPOTrainer._generate_and_score_completions` (trl/trainer/grpo_trainer.py, lines 2765-2787 of
    1.16.0), and `test_outcome_advantages_equal_trls_own` holds our outcome advantages to it."""
    from trl.trainer.utils import nanstd

    t = torch.tensor(values, dtype=torch.float64)
    return ((t - t.mean()) / (nanstd(t) + EPS)).tolist()


@pytest.mark.slow
def test_outcome_advantages_equal_trls_own(tiny_model_dir, tmp_path):
    """TRL 1.16 has no function that turns rewards into advantages: it computes them inline in
    `GRPOTrainer._generate_and_score_completions` (trl/trainer/grpo_trainer.py, the
    `sum_then_normalize` branch). So a stock GRPOTrainer on tiny-random scores scripted rollouts with
    scripted rewards, and the advantages it hands its loss are compared with `outcome_advantages`."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    # two groups of four; the second has equal rewards (std 0: no signal)
    rewards = [1.0, 2.0, 3.0, 10.0, 5.0, 5.0, 5.0, 5.0]
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    prompts = [[{"role": "user", "content": f"question {i}"}] for i in range(2)]

    def rollout(batch_prompts, trainer):
        p_ids = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=False)
                 for p in batch_prompts]
        c_ids = [tokenizer(f"answer {i}{tokenizer.eos_token}", add_special_tokens=False)["input_ids"]
                 for i in range(len(batch_prompts))]
        return {"prompt_ids": p_ids, "completion_ids": c_ids, "logprobs": None}

    def reward(completions, **kwargs):
        assert len(completions) == len(rewards)
        return list(rewards)

    args = GRPOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, num_generations=4,
                      max_completion_length=16, max_steps=1, beta=0.0, report_to="none", save_strategy="no",
                      shuffle_dataset=False, bf16=False, scale_rewards="group")
    trainer = GRPOTrainer(model=str(tiny_model_dir), reward_funcs=[reward], args=args, processing_class=tokenizer,
                          train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]), rollout_func=rollout)
    inputs = [{"prompt": prompts[0]}] * 4 + [{"prompt": prompts[1]}] * 4
    r = torch.tensor(rewards)
    trl_adv = trainer._generate_and_score_completions(inputs)["advantages"]
    assert torch.allclose(trl_adv, outcome_advantages(r, num_generations=4), atol=1e-6)
    assert trl_adv[4:].tolist() == [0.0] * 4
    trainer.scale_rewards = "none"  # read on every batch: TRL's "only centre" setting
    trl_adv = trainer._generate_and_score_completions(inputs)["advantages"]
    assert torch.allclose(trl_adv, outcome_advantages(r, num_generations=4, scale=False), atol=1e-6)


def test_call_i_is_compared_only_with_call_i():
    # group of 3: completion 0 has 2 calls, 1 has 1 call, 2 has none
    scores = [[0.9, 0.1], [0.3], []]
    adv = call_advantages(scores, num_generations=3)
    first = z([0.9, 0.3])
    assert adv[0][0] == pytest.approx(first[0], abs=1e-6)
    assert adv[1][0] == pytest.approx(first[1], abs=1e-6)
    # only completion 0 has a second call: nothing to compare with -> 0
    assert adv[0][1] == 0.0
    assert adv[2] == []


def test_groups_do_not_mix():
    scores = [[1.0], [0.0], [0.5], [0.5]]
    adv = call_advantages(scores, num_generations=2)
    assert adv[0][0] > 0 > adv[1][0]
    assert adv[2] == [0.0] and adv[3] == [0.0]


def test_pooled_mixes_positions():
    scores = [[0.9, 0.1], [0.3], []]
    adv = call_advantages(scores, num_generations=3, mode="pooled")
    pooled = z([0.9, 0.1, 0.3])
    assert adv == [[pytest.approx(pooled[0]), pytest.approx(pooled[1])], [pytest.approx(pooled[2])], []]
    # turn-level would have left the lone second call at 0; pooled punishes it for being late and bad
    assert adv[0][1] < 0


def test_unscaled_variant_only_centres():
    adv = call_advantages([[1.0], [0.0]], num_generations=2, scale=False)
    assert adv == [[0.5], [-0.5]]


def test_no_calls_anywhere():
    assert call_advantages([[], [], [], []], num_generations=2) == [[], [], [], []]


def test_incomplete_groups_are_an_error():
    with pytest.raises(ValueError, match="whole groups"):
        call_advantages([[1.0], [0.0], [0.5]], num_generations=2)
    with pytest.raises(ValueError, match="unknown call advantage estimator"):
        call_advantages([[1.0], [0.0]], num_generations=2, mode="mean")  # type: ignore[arg-type]


def test_token_advantages_put_the_call_term_on_call_tokens_only():
    outcome = torch.tensor([1.0, -1.0, 0.5])
    call_adv = [[2.0, -3.0], [1.0], []]
    spans = [[(1, 3), (4, 6)], [(0, 2)], []]
    a = token_advantages(outcome, call_adv, spans, length=7, alpha=0.1)
    assert a.shape == (3, 7)
    assert a[0].tolist() == pytest.approx([1.0, 1.2, 1.2, 1.0, 0.7, 0.7, 1.0])
    assert a[1].tolist() == pytest.approx([-0.9, -0.9, -1.0, -1.0, -1.0, -1.0, -1.0])
    assert a[2].tolist() == pytest.approx([0.5] * 7)


def test_alpha_zero_is_plain_grpo():
    outcome = torch.tensor([0.3, -0.3])
    a = token_advantages(outcome, [[5.0], [-5.0]], [[(0, 2)], [(1, 3)]], length=4, alpha=0.0)
    assert torch.equal(a, outcome.unsqueeze(1).expand(2, 4))


def test_token_advantages_check_their_inputs():
    with pytest.raises(ValueError, match="outside"):
        token_advantages(torch.zeros(1), [[1.0]], [[(2, 9)]], length=4, alpha=0.1)
    with pytest.raises(ValueError, match="call advantages for"):
        token_advantages(torch.zeros(1), [[1.0, 2.0]], [[(0, 1)]], length=4, alpha=0.1)


def test_end_to_end_on_a_hand_made_group():
    """Two groups of two; the first call of a better-scored completion gets a higher token advantage."""
    rewards = torch.tensor([1.0, 1.0, 3.0, 0.0])
    scores = [[0.8], [0.2, 0.9], [0.5], [0.5]]
    outcome = outcome_advantages(rewards, 2)
    adv = call_advantages(scores, 2)
    a = token_advantages(outcome, adv, [[(0, 2)], [(0, 2), (2, 4)], [(0, 1)], [(0, 1)]], length=4, alpha=0.01)
    assert a[0, 0] > a[1, 0]  # same outcome, better first call
    assert a[1, 3] == pytest.approx(0.0)  # lone second call: outcome advantage (0) only
    assert a[2, 0] == pytest.approx(outcome[2].item())  # equal call scores: no call term


def test_pooled_equals_turn_level_when_no_completion_has_two_calls():
    """The ablation only bites on multi-call completions; the logged share says whether it can."""
    single = [[0.9], [0.2], [], [0.5], [0.1], [0.7], [0.4], []]  # two groups of 4, at most one call each
    assert call_advantages(single, 4, "pooled") == call_advantages(single, 4, "turn_level")
    assert multi_call_group_share(single, 4) == 0.0
    multi = [[0.9, 0.1], [0.2], [], [0.5], [0.1], [0.7], [0.4], []]  # the first group has a 2-call completion
    assert call_advantages(multi, 4, "pooled")[:4] != call_advantages(multi, 4, "turn_level")[:4]
    assert call_advantages(multi, 4, "pooled")[4:] == call_advantages(multi, 4, "turn_level")[4:]
    assert multi_call_group_share(multi, 4) == 0.5


def test_pooled_advantages_favour_fewer_calls_and_turn_level_do_not():
    """The TRM paper's reason for turn-level advantages, on a constructed group: every call is good
    (scores 0.8-0.9), and completions differ only in how many calls they make. Pooled normalisation
    ranks later calls against earlier ones, so the extra calls come out negative and the completions
    that call more get less; turn-level compares call i only with call i and leaves them neutral."""
    scores = [[0.9], [0.9, 0.8], [0.9, 0.8, 0.8], [0.9]]

    def total(mode: str) -> list[float]:
        return [sum(a) for a in call_advantages(scores, num_generations=4, mode=mode)]

    pooled, turn = total("pooled"), total("turn_level")
    assert pooled[2] < pooled[1] < pooled[0] == pooled[3]  # the more calls, the lower: calling less pays
    assert turn == pytest.approx([0.0, 0.0, 0.0, 0.0])  # no completion is paid for its number of calls


def test_a_registered_estimator_is_chosen_by_name():
    from toolrl.trm import advantages

    @advantages.register_call_advantage("first_call_only")
    def first_call_only(scores, group):
        return [[(j, 0) for j in group if scores[j]]]

    try:
        adv = call_advantages([[1.0, 5.0], [0.0]], num_generations=2, mode="first_call_only")
        assert adv[0][1] == 0.0 and adv[0][0] > 0 > adv[1][0]
        with pytest.raises(ValueError, match="already registered"):
            advantages.register_call_advantage("first_call_only")(first_call_only)
    finally:
        del advantages.CALL_ADVANTAGES["first_call_only"]
    with pytest.raises(ValueError, match="turn_level, pooled"):
        call_advantages([[1.0], [0.0]], num_generations=2, mode="first_call_only")


def test_in_conversations_pooled_favours_fewer_calls_and_turn_level_does_not():
    """The same reason in the multi-turn setting, with the (user turn, call in turn) position keys of
    `toolrl.trm.multi_turn`: four conversations of two user turns, every call good, two of them
    spending an extra call (0.8) on one turn. Pooled pays the conversations that call less;
    turn-level compares each turn's first call with the other conversations' first call of that
    turn, and an extra call that no other conversation made has nothing to be compared with."""
    scores = [[0.9, 0.9], [0.9, 0.8, 0.9], [0.9, 0.9, 0.8], [0.9, 0.9]]
    keys = [[(0, 0), (1, 0)], [(0, 0), (0, 1), (1, 0)], [(0, 0), (1, 0), (1, 1)], [(0, 0), (1, 0)]]

    def total(mode: str) -> list[float]:
        return [sum(a) for a in call_advantages(scores, num_generations=4, mode=mode, keys=keys)]

    pooled, turn = total("pooled"), total("turn_level")
    assert pooled[1] == pytest.approx(pooled[2]) and pooled[1] < pooled[0] == pooled[3]
    assert turn == pytest.approx([0.0, 0.0, 0.0, 0.0])
