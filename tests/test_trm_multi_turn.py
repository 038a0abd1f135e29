"""The TRM on multi-turn conversations: labels per call, steps in context, the data stage's multi-turn
mode, TRM-guided GRPO on multi-turn rollouts, the classifier's interval and calibration, and the
data-requirement table."""

from __future__ import annotations

import dataclasses

import pytest
from test_multiturn_loop import SOLVED, Scripted, answer, call, calls

from toolrl.multiturn.loop import Limits, converse

LIMITS = Limits(max_steps_per_turn=4, max_total_tokens=6000)
# multi_turn_base_1 (GorillaFileSystem): turn 0 right; turn 1 spread over two messages plus an unneeded
# pwd; turn 2 a wrong cd, then a grep that fails where the cd left the model, then an unreadable message
SCRIPT = [
    calls(call("ls", a=True)), answer(),
    calls(call("cd", folder="workspace")), calls(call("mv", source="log.txt", destination="archive"), call("pwd")),
    answer(),
    calls(call("cd", folder="nowhere")), calls(call("grep", file_name="log.txt", pattern="Error")),
    "<tool_call>\n{not json}\n</tool_call>", answer(),
]


@pytest.fixture(scope="module")
def case():
    from toolrl.multiturn.cases import load_cases

    return load_cases("multi_turn_base")[1]


@pytest.fixture(scope="module")
def tokenizer():
    from toolrl.models import smollm2_tokenizer

    return smollm2_tokenizer()


@pytest.fixture(scope="module")
def rollout(case, tokenizer):
    (r,) = converse([case], Scripted(tokenizer, SCRIPT), LIMITS)
    return r


def test_one_verdict_per_call_against_its_turns_ground_truth(case, rollout):
    from toolrl.trm.multi_turn import trajectory_labels

    verdicts = trajectory_labels(case, rollout.trajectory)
    reasons = [[(v.necessity, v.quality, v.reason) for v in m] for m in verdicts]
    assert reasons == [
        [(1, 1, "ok")], [],
        [(1, 1, "ok")], [(1, 1, "ok"), (0, 1, "not_needed")], [],  # turn 1's calls align across its messages
        [(1, 0, "wrong_arguments")], [(1, 0, "execution_error")], [(0, 0, "unparsed_message")], [],
        [],  # turn 3: the script has run out, the model answers without the tail call
    ]
    assert rollout.trajectory.turns[2].steps[1].results[0].startswith('{"error": ')  # BFCL's own error form


def test_the_solved_case_is_all_good_calls(case, tokenizer):
    from toolrl.trm.multi_turn import trajectory_labels

    (r,) = converse([case], Scripted(tokenizer, SOLVED), LIMITS)
    assert [v.label for m in trajectory_labels(case, r.trajectory) for v in m] == [1] * 6


def test_steps_read_each_call_in_its_context(rollout, tokenizer):
    from toolrl.trm.multi_turn import message_calls
    from toolrl.trm.steps import encode_step, prompt_text

    got = message_calls(tokenizer, rollout.prompt_ids, rollout.completion_ids, rollout.env_mask, rollout.trajectory)
    assert [c.key for c in got] == [(0, 0), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]
    assistant = [k for k, m in enumerate(rollout.messages) if m["role"] == "assistant"]
    for c in got:
        # the context is the chat template's rendering of the conversation before the message
        assert c.context == prompt_text(tokenizer, rollout.messages[: assistant[c.message]])
        assert rollout.messages[assistant[c.message]]["content"].startswith(c.prefix + c.call)
        s, e = c.tokens
        assert all(rollout.env_mask[s:e]) and c.call in tokenizer.decode(rollout.completion_ids[s:e]) or not c.call
    pwd = got[3]
    assert "<obs>" in pwd.context and '"mv"' in pwd.prefix and "pwd" in pwd.call  # earlier results, same message
    # a long context is cut from the left: the call and its label stay
    enc = encode_step(tokenizer, pwd.context, pwd.prefix, pwd.call, label=1, max_length=64)
    assert len(enc["input_ids"]) == 64 and enc["labels"][-1] == 1
    assert tokenizer.decode(enc["input_ids"]).endswith(pwd.call)


def test_multi_turn_records_split_by_scenario_with_reference_positives(case, tokenizer, tmp_path, tiny_model_dir,
                                                                       mlflow_uri):
    from training_fixtures import tiny_params

    from toolrl.data.bfcl_multi_turn import replay
    from toolrl.multiturn.cases import load_cases
    from toolrl.trm.multi_turn import build_multi_turn

    other = load_cases("multi_turn_miss_param")[3]
    rollouts = converse([case, case, other], Scripted(tokenizer, SCRIPT), LIMITS)
    trajectory, messages = replay(case)
    replays = [{"id": "r0", "case_id": case.id, "trajectory": trajectory.to_dict(), "messages": messages}]
    params = tiny_params(tmp_path, tiny_model_dir, mlflow_uri, ["trm.data.task=multi_turn", "trm.data.val_fraction=0.5",
                                                                 "trm.data.hard_negatives_per_call=1"])
    splits, stats = build_multi_turn(params, rollouts, tokenizer, lambda m: None, replays)
    scenario_sides = {name: {r["prompt_id"].rpartition("_")[2] for r in recs} for name, recs in splits.items()}
    assert not scenario_sides["train"] & scenario_sides["val"]
    every = splits["train"] + splits["val"]
    assert {r["source"] for r in every} <= {"policy", "reference", "negative"}
    refs = [r for r in every if r["source"] == "reference"]
    assert all(r["label"] == 1 and isinstance(r["prompt"], list) for r in refs)
    assert stats["completions"] == 3 and stats["mean_calls_per_trajectory"] > 0
    assert stats["rule_reason/execution_error"] >= 2 and stats["task"] == "multi_turn"
    assert 0 <= stats["turn_completion_rate"] <= 1


def test_keys_make_turn_level_compare_the_same_turn():
    from toolrl.trm.advantages import call_advantages

    # two conversations: A calls twice in turn 0 and once in turn 1; B once in each turn
    scores = [[0.9, 0.2, 0.8], [0.1, 0.4]]
    keys = [[(0, 0), (0, 1), (1, 0)], [(0, 0), (1, 0)]]
    adv = call_advantages(scores, 2, "turn_level", keys=keys)
    assert adv[0][1] == 0.0  # A's second call of turn 0 has no peer
    assert adv[0][2] > 0 > adv[1][1]  # turn 1's first calls compete (0.8 vs 0.4), not A's 0.2 with B's 0.4
    with pytest.raises(ValueError, match="shaped like"):
        call_advantages(scores, 2, keys=[[0], [0]])


def test_paired_auc_difference_on_known_scores():
    import random

    from sklearn.metrics import roc_auc_score

    from toolrl.trm.compare import paired_auc_difference

    rng = random.Random(0)
    y = [k % 2 for k in range(120)]
    noise = [rng.random() for _ in y]
    sharp = [0.3 * n + 0.7 * t for n, t in zip(noise, y, strict=True)]  # separates the classes perfectly
    diff, low, high = paired_auc_difference(y, noise, sharp)
    assert diff == pytest.approx(roc_auc_score(y, sharp) - roc_auc_score(y, noise)) and low <= diff <= high
    assert low > 0  # the better model is called better
    assert paired_auc_difference(y, noise, noise) == (0.0, 0.0, 0.0)  # the same scores: no difference, no width
    diff, low, high = paired_auc_difference(y, noise, [rng.random() for _ in y])
    assert low < 0 < high  # two uninformative models: no difference called
    with pytest.raises(ValueError, match="one class"):
        paired_auc_difference([1, 1], [0.2, 0.3], [0.4, 0.5])


def test_roc_auc_interval_and_calibration():
    from toolrl.trm.trainer import calibration, held_out_measures, roc_auc_interval

    y = [0, 0, 1, 1, 0, 1, 1, 0] * 5
    p = [0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.6, 0.55] * 5
    low, high = roc_auc_interval(y, p)
    assert low < 0.8125 < high and roc_auc_interval(y, p) == (low, high)  # seeded
    cal = calibration(y, p)
    assert sum(b["n"] for b in cal["bins"]) == len(y) and 0 <= cal["ece"] <= 1
    assert calibration([1, 0], [1.0, 0.0])["ece"] == 0.0
    m = held_out_measures(p, [{"label": v, "source": "policy"} for v in y], 0.5)
    assert m["val"]["roc_auc_low"] == low and "ece" in m["val"] and m["calibration_bins"]


@pytest.mark.slow
def test_grpo_scores_multi_turn_calls_on_their_tokens(case, tiny_model_dir, tmp_path):
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig

    from toolrl.multiturn.rollouts import dataset_rows
    from toolrl.trm.grpo import TrmGRPOTrainer
    from toolrl.trm.model import init_trm, save_trm
    from toolrl.trm.multi_turn import message_calls
    from toolrl.trm.score import TrmScorer

    keep = {"ls", "cd", "pwd", "mv", "cp", "grep", "tail"}  # a shorter opening keeps the step short
    small = dataclasses.replace(case, functions=[f for f in case.functions if f["name"] in keep])
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    outputs = []

    def rollout_func(prompts, trainer):  # scripted conversations: [SOLVED, SCRIPT] per group
        rollouts = [converse([small], Scripted(tok, SOLVED if i % 2 == 0 else SCRIPT), LIMITS)[0]
                    for i, _ in enumerate(prompts)]
        outputs.append(rollouts)
        return {"prompt_ids": [r.prompt_ids for r in rollouts], "completion_ids": [r.completion_ids for r in rollouts],
                "logprobs": None, "env_mask": [r.env_mask for r in rollouts],
                "trajectory": [r.trajectory.to_dict() for r in rollouts]}

    def reward(completions, trajectory, **kwargs):
        return [float(len(t["turns"][0]["steps"][0]["text"])) for t in trajectory]

    model, t = init_trm(tiny_model_dir)
    scorer = TrmScorer(save_trm(model, t, tmp_path / "trm", {"max_length": 512, "threshold": 0.5}))
    assert not scorer.keep_called_tool  # a TRM saved without the switch is read with the plain cut it was trained on
    args = GRPOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=2, num_generations=2, max_steps=1,
                      beta=0.0, bf16=False, report_to=[], use_cpu=True, learning_rate=1e-4, logging_steps=1,
                      save_strategy="no", model_init_kwargs={"dtype": "float32"})
    trainer = TrmGRPOTrainer(model=str(tiny_model_dir), reward_funcs=reward, args=args,
                             train_dataset=Dataset.from_list(dataset_rows([small])), processing_class=tok,
                             rollout_func=rollout_func, trm_scorer=scorer, alpha=0.5, call_advantage="turn_level")
    trainer.model.train()
    out = trainer._generate_and_score_completions([{"prompt": small.id, "case_id": small.id} for _ in range(2)])
    adv = out["advantages"]
    rollouts = outputs[-1]
    steps = [message_calls(tok, r.prompt_ids, r.completion_ids, r.env_mask, r.trajectory) for r in rollouts]
    scores = [scorer.score_steps([c.step for c in row]) for row in steps]
    got = [[x["score"] for x in row] for row in trainer.last_call_scores]
    assert [len(g) for g in got] == [len(s) for s in scores]
    assert sum(got, []) == pytest.approx(sum(scores, []), abs=1e-4)
    scores = got  # the scores the advantages were built from

    def z2(a, b):  # the unbiased z-score of a pair, as TRL normalises (eps 1e-4)
        return ((a - b) / 2) / (abs(a - b) / 2 ** 0.5 + 1e-4)

    for b, (r, row) in enumerate(zip(rollouts, steps, strict=True)):
        n = len(r.completion_ids)
        base = adv[b, :n][torch.tensor(r.env_mask) == 0]
        assert torch.allclose(base, base[0].expand_as(base))  # environment tokens: the outcome advantage only
        peers = {c.key: j for j, c in enumerate(steps[1 - b])}
        for j, (c, s) in enumerate(zip(row, scores[b], strict=True)):
            term = adv[b, c.tokens[0]:c.tokens[1]] - base[0]
            # the sample table's call advantage is the call's term before alpha
            assert trainer.last_call_scores[b][j]["advantage"] == pytest.approx(float(term.mean()) / 0.5, abs=2e-3)
            if c.key in peers:  # compared with the same (turn, call in turn) of the other conversation only
                want = 0.5 * z2(s, scores[1 - b][peers[c.key]])
                assert torch.allclose(term, torch.full_like(term, want), atol=1e-3)
            else:
                assert torch.allclose(term, torch.zeros_like(term))
    assert trainer._metrics["train"]["trm/mean_calls"] == [(len(steps[0]) + len(steps[1])) / 2]
    assert trainer._metrics["train"]["trm/turns_completed"] == [(4 + rollouts[1].trajectory.turns_completed) / 2]


@pytest.mark.slow
def test_multi_turn_trm_data_then_the_data_requirement_table(tmp_path, tiny_model_dir, mlflow_uri):
    import json

    from training_fixtures import tiny_params

    from toolrl.data.bfcl_multi_turn import replay
    from toolrl.multiturn.answers import case_by_id
    from toolrl.trm.data import run_trm_data
    from toolrl.trm.requirement import data_requirement
    from toolrl.trm.steps import read_steps

    t = tmp_path
    ids = ["multi_turn_base_1", "multi_turn_base_3"]
    params = tiny_params(t, tiny_model_dir, mlflow_uri, [
        "trm.data.task=multi_turn", "trm.data.policy=base", "trm.data.prompts=2", "trm.data.samples_per_prompt=1",
        "trm.data.max_new_tokens=8", "trm.data.max_steps_per_turn=1", "trm.data.max_total_tokens=5000",
        "trm.data.val_fraction=0.5", "trm.data.hard_negatives_per_call=2", f"trm.data.output_dir={t}/data/trm",
        f"trm.model.output_dir={t}/models/trm", "trm.model.max_steps=2", "trm.model.eval_steps=2",
        "trm.model.per_device_train_batch_size=2", "trm.model.max_length=128", "trm.model.val_limit=3"])
    folder = t / "data" / "curated" / "multi_turn"
    with pytest.raises(FileNotFoundError, match="bfcl_multi_turn source"):
        run_trm_data(params)
    folder.mkdir(parents=True)
    (folder / "train_rl.jsonl").write_text("".join(json.dumps({"id": i, "case_id": i}) + "\n" for i in ids))
    replays = []
    for i in ids:
        trajectory, messages = replay(case_by_id(i))
        replays.append(json.dumps({"id": i, "case_id": i, "trajectory": trajectory.to_dict(), "messages": messages}))
    (folder / "train_sft.jsonl").write_text("\n".join(replays) + "\n")

    stats = run_trm_data(params)
    train, val = read_steps(t / "data" / "trm" / "train.jsonl"), read_steps(t / "data" / "trm" / "val.jsonl")
    assert stats["completions"] == 2 and stats["task"] == "multi_turn" and "mean_calls_per_trajectory" in stats
    assert train and val and not {r["prompt_id"] for r in train} & {r["prompt_id"] for r in val}
    card = (t / "data" / "trm" / "card.md").read_text()
    assert "calls per trajectory" in card and "2 multi-turn cases of" in card

    rows = data_requirement(params, [4, 6], t / "sizes", say=lambda m: None)
    assert [r["train_records"] for r in rows] == [4, min(6, len(train))]
    assert [r["val_records"] for r in rows] == [min(3, len(val))] * 2
    table = (t / "sizes" / "data_requirement.md").read_text()
    assert "ROC-AUC [95 % CI]" in table and (t / "sizes" / "data_requirement.csv").exists()


def test_seeded_sample_keeps_file_order_and_repeats_with_the_seed():
    from toolrl.trm.trainer import seeded_sample

    records = [{"id": i} for i in range(50)]
    some = seeded_sample(records, 10, seed=1)
    assert len(some) == 10 and some == sorted(some, key=lambda r: r["id"]) and some == seeded_sample(records, 10, 1)
    assert some != seeded_sample(records, 10, seed=2)
    assert seeded_sample(records, None, 1) is records and seeded_sample(records, 80, 1) is records


def test_epochs_give_each_size_equal_passes_and_one_evaluation(tmp_path):
    from toolrl.config import Params
    from toolrl.trm.requirement import data_requirement, size_params, training_records

    params = Params()
    params = params.model_copy(update={"trm": params.trm.model_copy(update={
        "data": params.trm.data.model_copy(update={"output_dir": str(tmp_path / "trm")}),
        "model": params.trm.model.model_copy(update={"per_device_train_batch_size": 4,
                                                     "gradient_accumulation_steps": 2})})})
    with pytest.raises(FileNotFoundError, match="toolrl trm data"):
        training_records(params)
    (tmp_path / "trm").mkdir()
    (tmp_path / "trm" / "train.jsonl").write_text("{}\n" * 20 + "\n")
    assert training_records(params) == 20
    # 8 records a step: 2 passes over 12 records are 3 steps; a size above the data trains on all 20
    small, large = size_params(params, 12, tmp_path, 2, 20).trm.model, size_params(params, 64, tmp_path, 2, 20).trm.model
    assert (small.max_steps, small.eval_steps, small.train_limit) == (3, 3, 12)
    assert (large.max_steps, large.eval_steps) == (5, 5)
    plain = size_params(params, 12, tmp_path).trm.model
    assert (plain.max_steps, plain.eval_steps) == (params.trm.model.max_steps, params.trm.model.eval_steps)
    assert not size_params(params, 12, tmp_path, 2, 20).tracking.register_models
    with pytest.raises(ValueError, match="epochs must be positive"):
        data_requirement(params, [4], tmp_path, epochs=0)
