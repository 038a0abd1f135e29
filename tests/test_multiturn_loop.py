"""The one conversation loop: token record, masks, limits, isolation, the HF policy, and a GRPO step."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from toolrl.multiturn.cases import load_cases
from toolrl.multiturn.loop import Limits, Message, converse
from toolrl.multiturn.trajectory import CALL_LIMIT, FINISHED, LENGTH_LIMIT, STEP_LIMIT, Trajectory

ASSISTANT = "<|im_start|>assistant"


def call(name: str, **arguments) -> str:
    return json.dumps({"name": name, "parameters": arguments})


def calls(*lines: str) -> str:
    return "<think> I call. </think>\n<tool_call>\n" + "\n".join(lines) + "\n</tool_call>"


def answer(text: str = "Done.") -> str:
    return f"<think> Finished. </think>\n<response> {text} </response>"


# Case multi_turn_base_1 (GorillaFileSystem, 4 user turns) played as its ground truth says.
SOLVED = [
    calls(call("ls", a=True)), answer(),
    calls(call("cd", folder="workspace"), call("mv", source="log.txt", destination="archive")), answer(),
    calls(call("cd", folder="archive"), call("grep", file_name="log.txt", pattern="Error")), answer(),
    calls(call("tail", file_name="log.txt", lines=20)), answer(),
]


class Scripted:
    """A policy that writes `script[n]` as the n-th model message of every conversation (the tokenizer's
    own tokens of the text, then `<|im_end|>`), and logs what it returned."""

    def __init__(self, tokenizer, script: list[str], default: str = answer()):
        self.tokenizer, self.script, self.default = tokenizer, script, default
        self.end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.log: list[list[int]] = []

    def continue_messages(self, sequences, max_new_tokens):
        out = []
        for seq, limit in zip(sequences, max_new_tokens, strict=True):
            n = self.tokenizer.decode(seq).count(ASSISTANT) - 1
            text = self.script[n] if n < len(self.script) else self.default
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.end_of_turn]
            out.append(Message(ids[:limit], finished=len(ids) <= limit))
            self.log.append(out[-1].token_ids)
        return out


@pytest.fixture(scope="module")
def case():
    return load_cases("multi_turn_base")[1]


@pytest.fixture(scope="module")
def short_case():
    return load_cases("multi_turn_base")[3]  # 2 user turns


@pytest.fixture(scope="module")
def tokenizer():
    from toolrl.models import smollm2_tokenizer

    return smollm2_tokenizer()


def render(tokenizer, messages, generation_prompt=False):
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def segments(mask: list[int]) -> list[tuple[int, int, int]]:
    """Runs of equal mask values: (value, start, end)."""
    out, start = [], 0
    for i in range(1, len(mask) + 1):
        if i == len(mask) or mask[i] != mask[start]:
            out.append((mask[start], start, i))
            start = i
    return out


def test_solved_case_finishes_with_the_token_record_of_the_templated_chat(case, tokenizer):
    policy = Scripted(tokenizer, SOLVED)
    (r,) = converse([case], policy, Limits(max_total_tokens=6000))
    t = r.trajectory
    assert t.stop == FINISHED and t.turns_completed == 4
    assert t.decoded() == [[[c.replace(" ", "") for c in gt]] for gt in case.ground_truth]
    assert "This is a log file" in t.turns[3].steps[0].results[0]  # tail ran in archive/ after the mv
    # prompt: the templated opening with the generation prompt
    assert r.prompt_ids == tokenizer(render(tokenizer, r.messages[:2], True), add_special_tokens=False)["input_ids"]
    # the whole record: the tokenization of the templated chat (model messages are canonical tokens here);
    # the template's newline after the last <|im_end|> is all that follows
    full = tokenizer(render(tokenizer, r.messages), add_special_tokens=False)["input_ids"]
    ids = r.prompt_ids + r.completion_ids
    assert full[: len(ids)] == ids and tokenizer.decode(full[len(ids):]) == "\n"
    assert [m["role"] for m in r.messages] == ["system"] + ["user", "assistant"] * 8
    # env_mask: 1 exactly on the model's tokens, in order
    assert len(r.env_mask) == len(r.completion_ids)
    model_runs = [r.completion_ids[a:b] for v, a, b in segments(r.env_mask) if v == 1]
    assert model_runs == policy.log
    for v, a, b in segments(r.env_mask):
        text = tokenizer.decode(r.completion_ids[a:b])
        if v == 0:  # what the template puts between two messages: end, the user message, next header
            assert text.startswith("\n<|im_start|>user\n") and text.endswith(f"<|im_end|>\n{ASSISTANT}\n")
            assert "<think>" not in text
    assert r.env_mask[-1] == 1 and r.completion_ids[-1] == policy.end_of_turn


def test_unreadable_and_bad_calls_become_tool_messages(case, tokenizer):
    script = [
        "<tool_call>\n{not json}\n</tool_call>",
        "<tool_call>\n" + call("ls", a=True),  # never closed
        calls(call("launch_rocket", speed=3)),
        calls(call("cd", folder=7)),
        calls(call("cd")),
        answer(),
    ]
    (r,) = converse([case], Scripted(tokenizer, script), Limits(max_steps_per_turn=10, max_total_tokens=6000))
    steps = r.trajectory.turns[0].steps
    assert [s.error is not None for s in steps] == [True, True, False, False, False, False]
    assert "could not be parsed (call line 1: tool call is not valid JSON" in steps[0].results[0]
    assert "unclosed <tool_call> block" in steps[1].results[0]
    assert "no function named 'launch_rocket'" in steps[2].results[0]
    assert "Error during execution of cd" in steps[3].results[0]
    assert "wrong arguments for cd" in steps[4].results[0]
    env_text = tokenizer.decode([t for t, m in zip(r.completion_ids, r.env_mask, strict=True) if m == 0])
    for s in steps[:5]:  # every one of them reached the model as an <obs> line
        assert f"<obs> {s.results[0].strip()} </obs>" in env_text
    assert len(r.trajectory.turns) == 4  # and the conversation went on


def test_rollouts_of_one_case_do_not_share_state(case, tokenizer):
    script = [calls(call("cd", folder="workspace"), call("mv", source="log.txt", destination="archive"))]
    rollouts = converse([case, case], Scripted(tokenizer, script), Limits(max_total_tokens=6000))
    for r in rollouts:  # the same move succeeds in both: each has its own file system
        assert "Error" not in r.trajectory.turns[0].steps[0].results[1]
    assert rollouts[0].completion_ids == rollouts[1].completion_ids


def test_progress_bar_counts_finished_conversations_and_changes_nothing(case, short_case, tokenizer, capsys):
    script = [calls(call("cd", folder="workspace")), answer()]
    quiet = converse([case, short_case], Scripted(tokenizer, script), Limits(max_total_tokens=6000))
    shown = converse([case, short_case], Scripted(tokenizer, script), Limits(max_total_tokens=6000),
                     progress="conversations")
    assert [r.completion_ids for r in shown] == [r.completion_ids for r in quiet]
    err = capsys.readouterr().err
    assert "conversations: 100%" in err and "2/2" in err


def test_call_limit_stops_and_says_what_was_not_run(case, tokenizer):
    script = [calls(call("ls"), call("pwd")), calls(call("ls"), call("pwd"))]
    (r,) = converse([case], Scripted(tokenizer, script), Limits(max_calls=3, max_total_tokens=6000))
    last = r.trajectory.turns[0].steps[-1]
    assert r.trajectory.stop == CALL_LIMIT and len(r.trajectory.calls) == 4
    assert "Not executed" not in last.results[0] and "limit of 3 calls" in last.results[1]
    assert last.refused == [False, True]  # the checker replays the first call only
    assert r.trajectory.decoded()[0][-1] == ["ls()"]
    assert r.env_mask[-1] == 1  # nothing follows the last model message


def test_step_limit_stops_a_turn_that_keeps_calling(case, tokenizer):
    (r,) = converse([case], Scripted(tokenizer, [], default=calls(call("pwd"))),
                    Limits(max_steps_per_turn=3, max_total_tokens=6000))
    assert r.trajectory.stop == STEP_LIMIT
    assert len(r.trajectory.turns) == 1 and len(r.trajectory.turns[0].steps) == 3
    assert all(s.results for s in r.trajectory.turns[0].steps)  # the last message's call still ran


def test_length_limits(case, tokenizer):
    # per message: a cut message is closed by the environment (masked) and the conversation goes on
    script = Scripted(tokenizer, [], default="<tool_call>\n" + call("ls", a=True) + "\n</tool_call>")
    (r,) = converse([case], script, Limits(max_new_tokens=5, max_total_tokens=6000))
    first = r.trajectory.turns[0].steps[0]
    assert first.truncated and "unclosed <tool_call> block" in first.error
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert r.completion_ids[5] == end and r.env_mask[:6] == [1] * 5 + [0]
    assert r.trajectory.stop == STEP_LIMIT
    assert Trajectory.from_dict(json.loads(json.dumps(r.trajectory.to_dict()))) == r.trajectory  # truncated kept
    # the context: the conversation stops within it, at a model token
    budget = len(r.prompt_ids) + 60
    (r,) = converse([case], Scripted(tokenizer, SOLVED), Limits(max_total_tokens=budget))
    assert r.trajectory.stop == LENGTH_LIMIT and r.length <= budget and r.env_mask[-1] == 1
    (r,) = converse([case], Scripted(tokenizer, SOLVED), Limits(max_total_tokens=len(r.prompt_ids) + 8))
    assert r.trajectory.stop == LENGTH_LIMIT and r.length == len(r.prompt_ids) + 8
    assert r.trajectory.turns[0].steps[0].truncated and r.completion_ids[-1] != end  # left unclosed: truncated


# ---------------------------------------------------------------- the HF policy


@pytest.fixture(scope="module")
def tiny():
    from toolrl.models import build_tiny_random

    model, tokenizer = build_tiny_random(0)
    return model.eval(), tokenizer


def test_greedy_hf_policy_is_step_by_step_generate(tiny, case, short_case):
    from toolrl.multiturn.policy import HFPolicy

    model, tokenizer = tiny
    limits = Limits(max_new_tokens=6, max_total_tokens=3100)
    rollouts = converse([case, short_case, case], HFPolicy(model, tokenizer), limits)
    again = converse([case, short_case, case], HFPolicy(model, tokenizer, batch_size=2), limits)
    assert [r.completion_ids for r in rollouts] == [r.completion_ids for r in again]
    assert rollouts[0].completion_ids == rollouts[2].completion_ids
    for r in rollouts[:2]:
        assert len(r.trajectory.turns) >= 2
        text = tokenizer.decode(r.prompt_ids + r.completion_ids, skip_special_tokens=False)
        assert render(tokenizer, r.messages).startswith(text)
        ids = r.prompt_ids + r.completion_ids
        for value, start, end in segments(r.env_mask):
            if value == 0:
                continue
            prefix = torch.tensor([ids[: len(r.prompt_ids) + start]])
            with torch.no_grad():
                out = model.generate(prefix, attention_mask=torch.ones_like(prefix), do_sample=False,
                                     max_new_tokens=end - start, eos_token_id=tokenizer.eos_token_id,
                                     pad_token_id=tokenizer.pad_token_id)
            assert out[0, prefix.size(1):].tolist() == r.completion_ids[start:end]


def test_sampling_with_a_seed_repeats_and_leaves_the_global_generator_alone(tiny, short_case):
    from toolrl.multiturn.policy import HFPolicy

    model, tokenizer = tiny
    limits = Limits(max_new_tokens=4, max_total_tokens=3100)
    state = torch.random.get_rng_state()
    first = converse([short_case] * 2, HFPolicy(model, tokenizer, temperature=1.0, seed=3, logprobs=True), limits,
                     logprobs=True)
    second = converse([short_case] * 2, HFPolicy(model, tokenizer, temperature=1.0, seed=3, logprobs=True), limits,
                     logprobs=True)
    assert torch.equal(state, torch.random.get_rng_state())
    assert [r.completion_ids for r in first] == [r.completion_ids for r in second]
    r = first[0]
    assert len(r.logprobs) == len(r.completion_ids)
    assert all((lp <= 0) if m else lp != lp for lp, m in zip(r.logprobs, r.env_mask, strict=True))
    with pytest.raises(ValueError, match="needs a policy that returns log-probs"):
        converse([short_case], HFPolicy(model, tokenizer), limits, logprobs=True)


# ---------------------------------------------------------------- GRPO through TRL's rollout_func


@pytest.mark.parametrize("shared_prefix", [False, True], ids=["trl", "shared_prefix"])
def test_grpo_step_on_multi_turn_rollouts_masks_the_environment(tiny_model_dir, tmp_path, case, short_case,
                                                                shared_prefix):
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from toolrl.multiturn.rollouts import bfcl_rollout_func, dataset_rows
    from toolrl.training.shared_prefix import SharedPrefixGRPOTrainer

    # the file-system tools only: a prompt of ~1370 tokens instead of ~2800 keeps the step short
    keep = {"ls", "cd", "pwd", "mv", "cp", "grep", "tail"}
    cases = [dataclasses.replace(c, functions=[f for f in c.functions if f["name"] in keep]) for c in (case, short_case)]
    outputs, losses, seen = [], [], []
    make_rollouts = bfcl_rollout_func(cases, Limits(max_new_tokens=6, max_total_tokens=1500))

    def rollout_func(prompts, trainer):
        outputs.append((list(prompts), make_rollouts(prompts, trainer)))
        return outputs[-1][1]

    def first_message_length(completions, trajectory, case_id, **kwargs):  # varies within a group
        seen.append((list(case_id), [Trajectory.from_dict(t) for t in trajectory]))
        return [float(len(t["turns"][0]["steps"][0]["text"])) for t in trajectory]

    base = SharedPrefixGRPOTrainer if shared_prefix else GRPOTrainer

    class Capturing(base):
        def _compute_loss(self, model, inputs):
            losses.append({k: inputs[k].clone() for k in ("completion_ids", "completion_mask", "tool_mask")})
            return super()._compute_loss(model, inputs)

    args = GRPOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, num_generations=2,
                      max_steps=1, beta=0.0, bf16=False, report_to=[], use_cpu=True, activation_checkpointing=False,
                      learning_rate=1e-3, logging_steps=1, save_strategy="no", model_init_kwargs={"dtype": "float32"})
    trainer = Capturing(model=str(tiny_model_dir), reward_funcs=first_message_length, args=args,
                        train_dataset=Dataset.from_list(dataset_rows(cases)),
                        processing_class=AutoTokenizer.from_pretrained(str(tiny_model_dir)),
                        rollout_func=rollout_func)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()

    (prompts, out), = outputs
    assert len(prompts) == 4 and prompts[0] == prompts[1] and prompts[2] == prompts[3]  # groups of 2 rollouts
    (ids, trajectories), = seen
    assert ids == prompts and [t.case_id for t in trajectories] == prompts
    assert all(len(t.turns) >= 2 for t in trajectories)  # the next user turns are in the completions
    # TRL's loss mask (completion_mask * tool_mask) is our env_mask: zero on every environment token
    rows = [(r.tolist(), m.tolist(), t.tolist()) for batch in losses
            for r, m, t in zip(batch["completion_ids"], batch["completion_mask"], batch["tool_mask"], strict=True)]
    assert len(rows) == 4
    for completion, env_mask in zip(out["completion_ids"], out["env_mask"], strict=True):
        row = next(r for r in rows if r[0][: len(completion)] == completion)
        loss_mask = [m * t for m, t in zip(row[1], row[2], strict=True)]
        assert loss_mask[: len(env_mask)] == env_mask and not any(loss_mask[len(env_mask):])
        assert 0 < sum(env_mask) < len(env_mask)
    assert any(not torch.equal(p, before[n]) for n, p in trainer.model.named_parameters())  # it trained
