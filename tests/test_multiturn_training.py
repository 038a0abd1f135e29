"""Multi-turn training one params change away: the GRPO stage with `grpo.task: multi_turn` (the real
`run_grpo` on tiny-random: metrics, trajectory sample tables, resume), and SFT on curated multi-turn
conversations (loss on the assistant's tokens only, over-length examples counted)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from training_fixtures import tiny_params

from toolrl.data.bfcl_multi_turn import replay, rl_record, sft_record
from toolrl.multiturn.answers import case_by_id
from toolrl.training.data import TrainingError, multi_turn_path
from toolrl.training.publish import read_csv

pytestmark = pytest.mark.slow

# Training scenarios (multi_turn.seed 0) with the shortest openings: ~2100 tokens with the SmolLM2 tokenizer.
CASES = ("multi_turn_base_115", "multi_turn_base_127")


def write_multi_turn(data_dir: Path, case_ids=CASES) -> None:
    """What curation's bfcl_multi_turn source writes for these cases (toolrl.data.bfcl_multi_turn)."""
    out = data_dir / "multi_turn"
    out.mkdir(parents=True, exist_ok=True)
    rl, sft = [], []
    for case_id in case_ids:
        case = case_by_id(case_id)
        trajectory, messages = replay(case)
        rl.append(rl_record(f"mt:{case_id}", case))
        sft.append(sft_record(f"mt:{case_id}", case, trajectory, messages))
    for name, rows in (("train_rl.jsonl", rl), ("train_sft.jsonl", sft)):
        (out / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


# Small conversations: one short message per turn, one generation of 2 rollouts per step.
MT = ["grpo.task=multi_turn", "grpo.train_limit=1", "grpo.per_device_train_batch_size=2", "grpo.num_generations=2",
      "grpo.sample_every=1", "grpo.sample_rows=2", "multi_turn.limits.max_new_tokens=8",
      "multi_turn.limits.max_steps_per_turn=1", "multi_turn.limits.max_total_tokens=2400"]


def test_multi_turn_grpo_needs_the_curated_multi_turn_data(tmp_path, tiny_model_dir, mlflow_uri):
    from toolrl.training.grpo import run_grpo

    params = tiny_params(tmp_path, tiny_model_dir, mlflow_uri, MT)
    with pytest.raises(TrainingError, match=r"add \{name: bfcl_multi_turn\} to data.sources and rerun curate"):
        run_grpo(params, say=lambda _: None)


def test_a_trainer_that_scores_single_turn_completions_is_refused_multi_turn(tmp_path, tiny_model_dir, mlflow_uri):
    from toolrl.training.grpo import run_grpo
    from toolrl.training.shared_prefix import SharedPrefixGRPOTrainer

    class SingleTurnOnly(SharedPrefixGRPOTrainer):
        pass

    params = tiny_params(tmp_path, tiny_model_dir, mlflow_uri, MT)
    write_multi_turn(Path(params.data.output_dir))
    with pytest.raises(TrainingError, match="grpo_trm does not support multi-turn"):
        run_grpo(params, name="grpo_trm", trainer_cls=SingleTurnOnly, say=lambda _: None)


def test_multi_turn_grpo_stage_logs_trajectories_and_resumes(tmp_path, tiny_model_dir, mlflow_uri, monkeypatch):
    from mlflow import MlflowClient
    from mlflow.artifacts import load_dict

    from toolrl.multiturn import rollouts
    from toolrl.training.grpo import run_grpo

    params = tiny_params(tmp_path, tiny_model_dir, mlflow_uri, [*MT, "grpo.max_steps=2", "grpo.save_steps=1"])
    write_multi_turn(Path(params.data.output_dir))

    # The first run crashes in the second step's rollouts, after the first step's checkpoint.
    calls, took = [], []
    real = rollouts.converse

    def crash_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("preempted")
        start = time.perf_counter()
        out = real(*args, **kwargs)
        took.append(time.perf_counter() - start)
        return out

    monkeypatch.setattr(rollouts, "converse", crash_second)
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="preempted"):
        run_grpo(params, say=lambda _: None)
    print(f"multi-turn GRPO on tiny-random: first step + crash {time.perf_counter() - start:.1f} s, "
          f"rollouts of one step {took[0]:.1f} s")
    monkeypatch.setattr(rollouts, "converse", real)

    result = run_grpo(params, say=lambda _: None)
    assert result.global_step == 2 and result.resumed_from and result.resumed_from.endswith("checkpoint-1")

    rows = read_csv(params.grpo.plots_file)
    assert [int(r["step"]) for r in rows] == [1, 2]
    for col in ("reward", "rewards/outcome_reward/mean", "rewards/format_reward/mean",
                "multi_turn/calls_per_trajectory", "multi_turn/turns_completed", "multi_turn/outcome_rate",
                "multi_turn/stop/finished", "multi_turn/stop/step_limit"):
        assert col in rows[-1], col
    assert sum(float(rows[-1][f"multi_turn/stop/{s}"])
               for s in ("finished", "step_limit", "call_limit", "length_limit")) == pytest.approx(1.0)
    metrics = json.loads(Path(params.grpo.metrics_file).read_text())
    assert metrics["task"] == "multi_turn" and metrics["variant"] == "outcome_dense"
    assert "multi_turn/outcome_rate" in metrics

    client = MlflowClient(tracking_uri=mlflow_uri)
    assert [m.step for m in client.get_metric_history(result.run_id, "grpo/multi_turn/calls_per_trajectory")] == [1, 2]
    tables = sorted(a.path for a in client.list_artifacts(result.run_id, "samples"))
    assert tables == ["samples/grpo_step_000001.json", "samples/grpo_step_000002.json"]
    table = load_dict(f"runs:/{result.run_id}/{tables[-1]}")
    cols = table["columns"]
    assert {"case_id", "turn", "call", "result", "reward/outcome_reward", "reward/format_reward"} <= set(cols)
    assert {row[cols.index("case_id")] for row in table["data"]} == {CASES[0]}
    assert {row[cols.index("rollout")] for row in table["data"]} == {0, 1}


def test_multi_turn_sft_learns_the_assistant_messages_only_and_counts_what_does_not_fit(
        tmp_path, tiny_model_dir, mlflow_uri):
    from transformers import AutoTokenizer

    from toolrl.training import checkpoints, sft
    from toolrl.training.data import load_view

    params = tiny_params(tmp_path, tiny_model_dir, mlflow_uri, ["sft.max_length=2300", "sft.train_limit=2"])
    data_dir = Path(params.data.output_dir)
    write_multi_turn(data_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    counts: dict[str, int] = {}
    said: list[str] = []
    train = sft.with_multi_turn(load_view(data_dir, "train", "sft", 2), multi_turn_path(data_dir, "sft"), tokenizer,
                                2300, None, counts, said.append)
    conversation = json.loads(multi_turn_path(data_dir, "sft").read_text().splitlines()[0])["messages"]
    assistant = [m["content"] for m in conversation if m["role"] == "assistant"]
    # one example per assistant message; those whose conversation so far passes 2300 tokens are left out
    assert counts["multi_turn_conversations"] == 2 and counts["multi_turn_left_out"] > 0
    assert counts["multi_turn_examples"] + counts["multi_turn_left_out"] == sum(
        m["role"] == "assistant" for c in map(json.loads, multi_turn_path(data_dir, "sft").read_text().splitlines())
        for m in c["messages"])
    assert len(train) == 2 + counts["multi_turn_examples"] and any("left out" in s for s in said)

    state = checkpoints.OutputState(tmp_path / "out", None, False)
    trainer = sft.build_trainer(params, state, tiny_model_dir, train, tokenizer, [])
    rows = {r["id"]: r for r in trainer.train_dataset}
    row = rows["mt:multi_turn_base_115#m4"]  # the second assistant message: after a call and its results
    learned = [t for t in row["labels"] if t != -100]
    assert tokenizer.decode(learned).strip() == assistant[1] + "<|im_end|>"
    # everything before it (system prompt, user turn, the first message, the tool results) is -100
    first = row["labels"].index(learned[0])
    assert all(t == -100 for t in row["labels"][:first]) and "<obs>" in tokenizer.decode(row["input_ids"][:first])

    with pytest.raises(TrainingError, match=r"none of the .* multi-turn SFT examples .* raise sft.max_length"):
        sft.with_multi_turn(load_view(data_dir, "train", "sft", 2), multi_turn_path(data_dir, "sft"), tokenizer,
                            1024, None, {}, said.append)


def test_the_sample_table_shows_each_calls_trm_score():
    from toolrl.formats import ToolCall
    from toolrl.multiturn.trajectory import Step, Trajectory, Turn
    from toolrl.training.callbacks import trajectory_table

    ls, cd = ToolCall("ls", {}), ToolCall("cd", {"folder": "a"})
    t = Trajectory("multi_turn_base_1", "multi_turn_base", turns=[
        Turn("list", steps=[Step("...", calls=[ls, cd], results=["x", "y"]), Step("<response> ok </response>")]),
        Turn("again", steps=[Step("...", calls=[ls], results=["z"]),
                             Step("<tool_call>\n{\"name\": \"ls\"}\n{bad\n</tool_call>", error="line 2: not JSON",
                                  results=["Error: line 2: not JSON"])]),
    ])
    # grpo_trm's last_call_scores: messages numbered across the conversation (the second turn's are 2, 3);
    # the TRM also read the call lines of the unparsed message 3, which the loop never ran
    scores = [[{"turn": 0, "message": 0, "call": "ls", "score": 0.9, "advantage": 0.5},
               {"turn": 0, "message": 0, "call": "cd", "score": 0.2},
               {"turn": 1, "message": 2, "call": "ls", "score": 0.7},
               {"turn": 1, "message": 3, "call": '{"name": "ls"}', "score": 0.1},
               {"turn": 1, "message": 3, "call": "{bad", "score": 0.05}]]
    table = trajectory_table([t], {"outcome_reward": [1.0]}, step=3, call_scores=scores)
    assert table["trm_score"] == [0.9, 0.2, None, 0.7, 0.1, 0.05]  # every scored call has its row
    assert table["call_advantage"] == [0.5, None, None, None, None, None]
    assert table["call"][2] == "" and table["turn"] == [0, 0, 0, 1, 1, 1]
    assert table["call"][4:] == ['{"name": "ls"}', "{bad"] and table["error"][4:] == ["line 2: not JSON"] * 2
    assert table["result"][4:] == ["Error: line 2: not JSON", ""]
    assert "trm_score" not in trajectory_table([t], {}, step=3)


def test_cases_whose_opening_fills_the_context_are_left_out_and_said(tmp_path, tiny_model_dir, mlflow_uri):
    from toolrl.training.grpo import run_grpo

    params = tiny_params(tmp_path, tiny_model_dir, mlflow_uri, [*MT, "multi_turn.limits.max_total_tokens=600"])
    write_multi_turn(Path(params.data.output_dir))
    said = []
    with pytest.raises(TrainingError, match=r"no multi-turn training case .* fits multi_turn.limits: the shortest "
                                            r"opening is \d+ tokens, max_total_tokens - max_new_tokens is 592"):
        run_grpo(params, say=said.append)
