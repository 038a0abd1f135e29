"""Training building blocks: data views, output-folder state, call statistics, reward observation,
per-step CSV, launch plans and the GPU dry run. Fast: no training here (see test_training_run.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from training_fixtures import TOOLS, record, tiny_params, write_curated

from toolrl import formats
from toolrl.config import ConfigError, GrpoParams, validate
from toolrl.training import checkpoints, launch
from toolrl.training.callbacks import RewardRecorder, abstain_stats, call_stats
from toolrl.training.data import (
    TrainingError,
    check_sft_lengths,
    is_no_call,
    load_view,
    no_call_mix,
    read_records,
    to_dataset,
)
from toolrl.training.grpo import rl_records

# ---------------------------------------------------------------- data views


def test_views_keep_what_each_trainer_reads(tmp_path):
    folder = write_curated(tmp_path / "curated", train=6)
    sft = load_view(folder, "train", "sft")
    rl = load_view(folder, "train", "rl", limit=4)
    assert set(sft.column_names) == {"prompt", "completion", "id"} and len(sft) == 6
    assert set(rl.column_names) == {"prompt", "ground_truth", "tools", "id"} and len(rl) == 4
    assert sft[0]["prompt"] == formats.prompt_messages(TOOLS, [{"role": "user", "content": "What's the weather in Paris?"}])
    assert sft[0]["completion"][0]["role"] == "assistant"
    assert json.loads(rl[0]["tools"]) == TOOLS
    assert formats.parse(rl[0]["ground_truth"]).calls == [formats.ToolCall("get_weather", {"city": "Paris"})]


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.pop("completion"), "field 'completion' missing"),
    (lambda r: r.update(prompt=[]), "'prompt' must be a non-empty list"),
    (lambda r: r.update(completion=[{"role": "user", "content": "x"}]), "'completion' must be exactly one assistant message"),
    (lambda r: r.update(prompt=[{"role": "user"}]), "'prompt' holds a message without string 'role' and 'content'"),
])
def test_a_bad_record_names_file_line_and_fix(tmp_path, mutate, message):
    good, bad = record(0), record(1)
    mutate(bad)
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(TrainingError, match=f"line 2: {message}.*toolrl data curate"):
        read_records(path, "sft")


def test_rl_view_needs_a_string_ground_truth_and_json_lines(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({**record(0), "ground_truth": None}) + "\n")
    with pytest.raises(TrainingError, match="'ground_truth' must be a string"):
        read_records(path, "rl")
    path.write_text("{not json\n")
    with pytest.raises(TrainingError, match="line 1: not valid JSON"):
        read_records(path, "rl")
    path.write_text("\n")
    with pytest.raises(TrainingError, match="no records"):
        read_records(path, "rl")


def test_missing_split_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="toolrl data curate"):
        load_view(tmp_path, "train", "sft")


def test_no_call_mix_repeats_or_thins_the_no_call_records_to_the_share():
    records = [record(i) for i in range(12)]  # every third one is a no-call record: 8 call, 4 no-call
    calls = [r for r in records if not is_no_call(r)]
    for share, n_no_call in ((0.5, 8), (0.6, 12), (0.55, 10), (0.2, 2), (0.0, 0), (1 / 3, 4)):
        mixed, before, after = no_call_mix(records, share, seed=0)
        assert (before, after) == (4, n_no_call) and len(mixed) == 8 + n_no_call
        assert [r for r in mixed if not is_no_call(r)] == calls  # call records untouched, in order
        assert sum(is_no_call(r) for r in mixed) == n_no_call
        assert len({r["id"] for r in mixed}) == len(mixed)  # a repeat is named as one
    mixed, _, _ = no_call_mix(records, 0.55, seed=0)  # 2 whole copies, then 2 of the 4 drawn by the seed
    drawn = [r["id"] for r in mixed if r["id"].endswith("#r2")]
    assert len(drawn) == 2 and drawn == [r["id"] for r in no_call_mix(records, 0.55, seed=0)[0] if r["id"].endswith("#r2")]
    assert {r["id"].split("#")[0] for r in mixed if is_no_call(r)} == {r["id"] for r in records if is_no_call(r)}
    assert len({tuple(r["id"] for r in no_call_mix(records, 0.2, seed=s)[0][8:]) for s in range(20)}) > 1  # seeds differ


def test_no_call_mix_explains_what_it_cannot_do():
    calls_only = [record(i) for i in (0, 1, 3, 4)]
    with pytest.raises(TrainingError, match="has none: curate some"):
        no_call_mix(calls_only, 0.5, seed=0)
    assert no_call_mix(calls_only, 0.0, seed=0)[0] == calls_only
    with pytest.raises(TrainingError, match="every training record is a no-call record"):
        no_call_mix([record(2), record(5)], 0.5, seed=0)
    with pytest.raises(TrainingError, match="no 'target' object"):
        no_call_mix([{"id": "x", "prompt": []}], 0.5, seed=0)


def test_grpo_reads_the_curated_mix_or_the_share_it_is_given(tmp_path, tiny_model_dir, mlflow_uri):
    said: list[str] = []
    params = tiny_params(tmp_path, tiny_model_dir, mlflow_uri)
    assert [r["id"] for r in rl_records(params, params.grpo, said.append)] == [f"fx-{i}" for i in range(12)] and not said
    params = tiny_params(tmp_path, tiny_model_dir, mlflow_uri, ["grpo.no_call_share=0.5", "grpo.train_limit=6"])
    records = rl_records(params, params.grpo, said.append)  # the first 6: 4 call, 2 no-call -> 4 no-call
    assert len(records) == 8 and sum(is_no_call(r) for r in records) == 4
    assert said == ["grpo.no_call_share=0.5: 4 no-call prompts of 8 (the curated set had 2 of 6)"]
    with pytest.raises(ConfigError, match="set it to null with task: multi_turn"):
        validate({"grpo": {"task": "multi_turn", "no_call_share": 0.5}})
    with pytest.raises(ConfigError, match="no_call_share"):
        validate({"grpo": {"no_call_share": 1.0}})


def test_prompts_longer_than_max_length_fail_instead_of_being_dropped(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    data = to_dataset([record(i) for i in range(3)], "sft")
    assert check_sft_lengths(data, tokenizer, 2048) == 0
    prompt_len = len(tokenizer(tokenizer.apply_chat_template(record(0)["prompt"], tokenize=False,
                                                             add_generation_prompt=True))["input_ids"])
    assert check_sft_lengths(data, tokenizer, prompt_len + 5) == 3  # completions cut, reported
    with pytest.raises(TrainingError, match=r"3 of 3 SFT examples .* Raise sft.max_length"):
        check_sft_lengths(data, tokenizer, 256)


# ---------------------------------------------------------------- output folder state


def _fake_checkpoint(folder: Path, step: int, complete: bool = True) -> Path:
    path = checkpoints.checkpoint_folder(folder) / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if complete:
        (path / checkpoints.TRAINER_STATE).write_text(json.dumps({"global_step": step}))
    return path


def test_resume_picks_the_last_complete_checkpoint(tmp_path):
    out = tmp_path / "out"
    state = checkpoints.prepare_output(out, {"a": 1}, say=lambda _: None)
    assert state.resume_from is None and not state.done
    _fake_checkpoint(out, 2)
    _fake_checkpoint(out, 4)
    torn = _fake_checkpoint(out, 6, complete=False)  # killed while saving
    said: list[str] = []
    state = checkpoints.prepare_output(out, {"a": 1}, say=said.append)
    assert state.resume_from == tmp_path / "out.checkpoints" / "checkpoint-4"
    assert checkpoints.checkpoint_step(state.resume_from) == 4
    assert not torn.exists() and "incomplete checkpoint" in said[0]


def test_other_settings_start_over_and_say_what_changed(tmp_path):
    out = tmp_path / "out"
    checkpoints.prepare_output(out, {"section": {"lr": 1, "steps": 3}}, say=lambda _: None)
    _fake_checkpoint(out, 2)
    (state_dir := checkpoints.checkpoint_folder(out)).joinpath("mlflow_run_id").write_text("abc")
    said: list[str] = []
    state = checkpoints.prepare_output(out, {"section": {"lr": 2, "steps": 3}}, say=said.append)
    assert state.resume_from is None and not (state_dir / "mlflow_run_id").exists()
    assert "changed: section.lr" in said[0]


def test_a_run_resumes_after_its_output_folder_was_deleted(tmp_path):
    """`dvc exp run` force-checks-out the workspace first, deleting each out the lock has no hash for: a
    crashed stage's output folder. The checkpoints live beside it, so the next start still resumes."""
    import shutil

    out = tmp_path / "models" / "grpo"
    checkpoints.prepare_output(out, {"a": 1}, say=lambda _: None)
    _fake_checkpoint(out, 2)
    shutil.rmtree(out)
    state = checkpoints.prepare_output(out, {"a": 1}, say=lambda _: None)
    assert state.resume_from == tmp_path / "models" / "grpo.checkpoints" / "checkpoint-2" and not state.done
    assert (out / checkpoints.FINGERPRINT_FILE).exists()  # the output folder is the run's again


def test_checkpoints_an_older_version_kept_inside_the_output_folder_resume(tmp_path):
    """Before 2026-12-03 checkpoints and the run id lived inside the output folder: a run crashed under that
    layout resumes from them, in its MLflow run."""
    out = tmp_path / "models" / "grpo"
    for step in (2, 4):
        (out / f"checkpoint-{step}").mkdir(parents=True)
        (out / f"checkpoint-{step}" / checkpoints.TRAINER_STATE).write_text(json.dumps({"global_step": step}))
    (out / checkpoints.FINGERPRINT_FILE).write_text(json.dumps({"a": 1}))
    (out / "mlflow_run_id").write_text("abc")
    said: list[str] = []
    state = checkpoints.prepare_output(out, {"a": 1}, say=said.append)
    work = tmp_path / "models" / "grpo.checkpoints"
    assert state.resume_from == work / "checkpoint-4" and (work / "mlflow_run_id").read_text() == "abc"
    assert not list(out.glob("checkpoint-*")) and "moved 2 checkpoint(s)" in said[0]
    # other settings start over from there as from the new layout
    assert checkpoints.prepare_output(out, {"a": 2}, say=lambda _: None).resume_from is None


def test_done_run_is_reused_and_fresh_forgets_it(tmp_path):
    out = tmp_path / "out"
    checkpoints.prepare_output(out, {"a": 1}, say=lambda _: None)
    _fake_checkpoint(out, 3)
    checkpoints.mark_done(out, {"global_step": 3}, keep_checkpoints=False)
    assert not checkpoints.checkpoint_folder(out).exists()
    assert checkpoints.prepare_output(out, {"a": 1}, say=lambda _: None).done
    assert not checkpoints.prepare_output(out, {"a": 1}, fresh=True, say=lambda _: None).done


def test_a_folder_training_did_not_write_is_never_emptied(tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(TrainingError, match="not written by `toolrl train`"):
        checkpoints.prepare_output(out, {"a": 1}, say=lambda _: None)
    with pytest.raises(TrainingError):
        checkpoints.prepare_output(out, {"a": 1}, fresh=True, say=lambda _: None)
    assert (out / "notes.txt").read_text() == "keep me"


# ---------------------------------------------------------------- statistics and observation


def test_call_stats_count_parseable_calls_and_well_formed_answers():
    call = formats.render_completion("t", [formats.ToolCall("a", {}), formats.ToolCall("b", {"x": 1})], None)
    answer = formats.render_completion("t", [], "done")
    broken = "<think> t </think>\n<tool_call>\n{not json}\n</tool_call>"
    stats = call_stats([call, answer, broken, "plain text"])
    assert stats == {"parseable_call_share": 0.25, "mean_calls": 0.5, "well_formed_share": 0.5}
    assert call_stats([]) == {"parseable_call_share": 0.0, "mean_calls": 0.0, "well_formed_share": 0.0}


def test_abstain_stats_split_abstaining_by_what_the_prompt_asks():
    call_gt, no_call_gt = record(0)["ground_truth"], record(2)["ground_truth"]
    call = formats.render_completion("t", [formats.ToolCall("get_weather", {"city": "Oslo"})], None)
    answer = formats.render_completion("t", [], "No tool fits.")
    broken = "<think> t </think>\n<tool_call>\n{not json}\n</tool_call>"  # no parseable call: counts as abstaining
    stats = abstain_stats([call, answer, broken, answer, call, call],
                          [call_gt, call_gt, call_gt, no_call_gt, no_call_gt, None])
    assert stats == {"no_call_prompt_share": 0.4, "abstain_on_no_call": 0.5, "abstain_on_call": 2 / 3}
    only_calls = abstain_stats([call], [call_gt])
    assert only_calls == {"no_call_prompt_share": 0.0, "abstain_on_call": 0.0}  # no no-call prompt: left out
    assert abstain_stats([call], [None]) == {}  # no ground truth (e.g. a custom dataset): nothing to split by


def test_recorder_observes_the_reward_library_without_changing_it():
    from types import SimpleNamespace

    from toolrl.config import RewardParams
    from toolrl.rewards.trl import reward_functions

    fns = reward_functions(RewardParams())
    recorder = RewardRecorder()
    wrapped = recorder.wrap(fns)
    assert [w.__name__ for w in wrapped] == [f.__name__ for f in fns]
    gt = [record(0)["ground_truth"]] * 2
    completions = [[{"role": "assistant", "content": gt[0]}], [{"role": "assistant", "content": "no idea"}]]
    logged: dict[str, float] = {}
    kwargs = {"ground_truth": gt, "trainer_state": SimpleNamespace(global_step=7),
              "log_metric": lambda name, value: logged.__setitem__(name, value)}
    for fn, raw in zip(wrapped, fns, strict=True):
        assert fn(prompts=[record(0)["prompt"]] * 2, completions=completions, **kwargs) == \
            raw(prompts=[record(0)["prompt"]] * 2, completions=completions, **kwargs)
    # no no-call prompt in the batch: abstain_on_no_call is not logged (TRL would log an all-NaN step as None)
    assert logged == {"tool_calls/parseable_call_share": 0.5, "tool_calls/mean_calls": 0.5,
                      "tool_calls/well_formed_share": 0.5, "tool_calls/no_call_prompt_share": 0.0,
                      "tool_calls/abstain_on_call": 0.5}
    table = recorder.table(rows=8)
    assert table["step"] == [7, 7] and table["n_calls"] == [1, 0]
    assert table["reward/format_reward"][0] > table["reward/format_reward"][1]


def test_recorded_statistics_read_the_text_the_reward_reads():
    """A multi-message completion: the reward and the logged call statistics see the same text."""
    from types import SimpleNamespace

    from toolrl.config import RewardParams
    from toolrl.rewards.trl import reward_functions

    gt = record(0)["ground_truth"]
    head, sep, tail = gt.partition("\n<tool_call>")
    assert sep, "the fixture's ground truth has a call"
    turns = [{"role": "assistant", "content": head}, {"role": "tool", "content": "{}"},
             {"role": "assistant", "content": sep.lstrip("\n") + tail}]
    recorder = RewardRecorder()
    fmt = recorder.wrap(reward_functions(RewardParams()))[0]
    logged: dict[str, float] = {}
    rewards = fmt(prompts=[record(0)["prompt"]], completions=[turns], ground_truth=[gt],
                  trainer_state=SimpleNamespace(global_step=0), log_metric=lambda k, v: logged.__setitem__(k, v))
    assert recorder.completions == [formats.assistant_text(turns)] == [gt]
    assert rewards == [1.0] and logged["tool_calls/parseable_call_share"] == 1.0


def test_metrics_csv_is_rebuilt_from_the_resumed_log_history(tmp_path):
    """A resumed run's CSV holds the checkpoint's steps from the trainer's log history, whatever the file on
    disk says: DVC may have deleted it, and a killed process may have written steps past its checkpoint."""
    from types import SimpleNamespace

    from toolrl.training.callbacks import StageCallback

    path = tmp_path / "plots" / "grpo.csv"
    path.parent.mkdir()
    path.write_text("step,reward\n1,1.0\n2,2.0\n3,3.0\n")  # step 3: written after the checkpoint at 2
    history = [{"loss": 0.5, "reward": 1.0, "epoch": 0.1, "step": 1},
               {"loss": 0.4, "reward": 2.0, "kl": 0.1, "step": 2},
               {"train_runtime": 9.0, "train_loss": 0.4, "step": 2}]  # a summary entry is not a row
    state = SimpleNamespace(is_world_process_zero=True, global_step=2, log_history=history)
    callback = StageCallback("grpo", path)
    callback.on_train_begin(None, state, None)
    callback.on_log(None, SimpleNamespace(is_world_process_zero=True, global_step=3), None, logs={"reward": 30.0})
    lines = path.read_text().splitlines()
    assert lines[0] == "step,loss,reward,kl"
    assert lines[1:] == ["1,0.5,1.0,", "2,0.4,2.0,0.1", "3,,30.0,"]
    path.unlink()  # deleted with the stage's outs: the history alone rebuilds it
    StageCallback("grpo", path).on_train_begin(None, state, None)
    assert path.read_text().splitlines()[1:] == ["1,0.5,1.0,", "2,0.4,2.0,0.1"]


# ---------------------------------------------------------------- params and launch


def test_grpo_batch_must_hold_whole_groups():
    with pytest.raises(ConfigError, match="not a multiple of num_generations = 3"):
        validate({"grpo": {"num_generations": 3}})
    with pytest.raises(ConfigError, match="max_prompt_length is gone"):
        validate({"grpo": {"max_prompt_length": 512}})
    assert GrpoParams(per_device_train_batch_size=2, num_generations=4, gradient_accumulation_steps=2)


def test_cpu_plan_runs_in_process(tmp_path, tiny_model_dir, mlflow_uri):
    params = tiny_params(tmp_path, tiny_model_dir, mlflow_uri)
    plan = launch.plan("sft", params, "params.yaml", ["sft.max_steps=2"], fresh=True)
    assert plan.in_process and plan.server is None
    assert plan.train == ["python", "-m", "toolrl.training.launch", "sft", "--params", "params.yaml",
                          "-S", "sft.max_steps=2", "--fresh"]


def test_gpu_plan_is_accelerate_plus_a_vllm_server(tmp_path, tiny_model_dir, mlflow_uri):
    params = tiny_params(tmp_path, tiny_model_dir, mlflow_uri, [
        "grpo.launch.accelerate_config=infra/deepspeed/zero2.yaml", "grpo.launch.num_processes=3",
        "grpo.launch.cuda_visible_devices='1,2,3'", "grpo.vllm.enabled=true", "grpo.vllm.mode=server",
        "grpo.vllm.server_cuda_visible_devices='0'", "grpo.vllm.max_model_length=3072", "grpo.init=sft"])
    plan = launch.plan("grpo", params, "params.yaml", ["grpo.max_steps=9"])
    assert not plan.in_process
    assert plan.env == {"CUDA_VISIBLE_DEVICES": "1,2,3"} and plan.server_env == {"CUDA_VISIBLE_DEVICES": "0"}
    assert plan.train == ["accelerate", "launch", "--config_file", "infra/deepspeed/zero2.yaml", "--num_processes",
                          "3", "-m", "toolrl.training.launch", "grpo", "--params", "params.yaml", "-S", "grpo.max_steps=9"]
    assert plan.server[:4] == ["trl", "vllm-serve", "--model", str(tmp_path / "models" / "sft")]
    assert "--max-model-len" in plan.server and plan.server[plan.server.index("--max-model-len") + 1] == "3072"
    shell = plan.shell().splitlines()
    assert shell[1].startswith("CUDA_VISIBLE_DEVICES=0 trl vllm-serve") and shell[3].startswith("CUDA_VISIBLE_DEVICES=1,2,3 accelerate")


def test_grpo_trm_is_launched_as_grpo_says(tmp_path, tiny_model_dir, mlflow_uri):
    """grpo_trm's trainer gathers TRM scores across processes: it runs under the grpo section's launch."""
    params = tiny_params(tmp_path, tiny_model_dir, mlflow_uri, [
        "grpo.launch.accelerate_config=infra/accelerate/multi_gpu.yaml", "grpo.launch.num_processes=2"])
    plan = launch.plan("grpo_trm", params, "params.yaml", [])
    assert plan.train == ["accelerate", "launch", "--config_file", "infra/accelerate/multi_gpu.yaml", "--num_processes",
                          "2", "-m", "toolrl.training.launch", "grpo_trm", "--params", "params.yaml"]
    assert launch.section(params, "grpo_trm").output_dir == params.trm.grpo.output_dir
    assert launch.inputs("grpo_trm", params)[str(Path(params.trm.model.output_dir))] is False  # no TRM yet
    assert launch.plan("grpo_trm", tiny_params(tmp_path, tiny_model_dir, mlflow_uri), "params.yaml", []).in_process


def test_check_builds_trls_config_and_reports_gpu_only_pieces(tmp_path, tiny_model_dir, mlflow_uri):
    params = tiny_params(tmp_path, tiny_model_dir, mlflow_uri, [
        "grpo.bf16=true", "grpo.vllm.enabled=true", "grpo.launch.accelerate_config=infra/deepspeed/zero3.yaml",
        "grpo.lora.enabled=true"])
    import os

    cwd = os.getcwd()
    os.chdir(Path(__file__).resolve().parents[1])  # infra/ paths are relative to the project root
    try:
        notes = launch.check("grpo", params)
    finally:
        os.chdir(cwd)
    text = "\n".join(notes)
    assert not (tmp_path / "models" / "grpo").exists()  # a dry run writes nothing
    assert "use_cpu" in text and "vllm is not installed" in text and "ZeRO-3" in text
    bad = tiny_params(tmp_path, tiny_model_dir, mlflow_uri, ["grpo.launch.accelerate_config=infra/none.yaml"])
    with pytest.raises(ConfigError, match="infra/none.yaml not found"):
        launch.check("grpo", bad)


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "toolrl.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_dry_run_of_the_gpu_profile_prints_the_exact_launch_command(project_root):
    profile = subprocess.run([sys.executable, "-m", "toolrl.cli", "params", "profile", "gpu"], capture_output=True,
                             text=True, cwd=project_root)
    overrides = profile.stdout.split()
    assert profile.returncode == 0 and "grpo.learning_rate=1.0e-06" in overrides
    args = [a for o in overrides for a in ("-S", o)]
    out = _cli("train", "grpo", "--dry-run", *args, cwd=project_root)
    assert out.returncode == 0, out.stderr
    assert "grpo configuration is valid" in out.stderr and "lr 1e-06, bf16 True" in out.stderr
    expected = ("accelerate launch --config_file infra/accelerate/multi_gpu.yaml --num_processes 4 "
                "-m toolrl.training.launch grpo --params params.yaml " + " ".join(f"-S {o}" for o in overrides))
    assert out.stdout.strip() == expected


def test_dry_run_rejects_what_trl_would_reject(project_root, tmp_path):
    out = _cli("train", "grpo", "--dry-run", "-S", "grpo.num_generations=3", cwd=project_root)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "num_generations = 3" in out.stderr
    out = _cli("train", "sft", "--dry-run", "-S", "sft.launch.accelerate_config=nowhere.yaml", cwd=project_root)
    assert out.returncode == 2 and "nowhere.yaml not found" in out.stderr


def test_compare_plots_one_column_of_several_runs_and_explains_bad_input(tmp_path):
    from typer.testing import CliRunner

    from toolrl.cli import _register_subcommands, app

    _register_subcommands()
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("step,reward,tool_calls/mean_calls\n1,0.5,1.0\n2,0.7,0.5\n3,0.9,0.25\n")
    b.write_text("step,reward,tool_calls/mean_calls\n1,0.4,1.0\n2,0.6,1.0\n")
    out = tmp_path / "calls.png"
    done = CliRunner().invoke(app, ["train", "compare", "--run", f"grpo={a}", "--run", f"grpo_trm={b}",
                                    "--column", "tool_calls/mean_calls", "--out", str(out), "--window", "2"])
    assert done.exit_code == 0, done.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = CliRunner().invoke(app, ["train", "compare", "--run", f"x={a}", "--column", "nope", "--out", str(out)])
    assert missing.exit_code != 0 and "no values in column 'nope'" in str(missing.exception)
    bad = CliRunner().invoke(app, ["train", "compare", "--run", "no-equals-sign", "--column", "reward", "--out", str(out)])
    assert bad.exit_code != 0 and "LABEL=CSV" in str(bad.exception)


def test_compare_reads_runs_from_mlflow(tmp_path, mlflow_uri):
    """A grid experiment's per-step CSV stays in DVC's cache; its MLflow run has the same history."""
    from mlflow.tracking import MlflowClient
    from typer.testing import CliRunner

    from toolrl.cli import _register_subcommands, app

    _register_subcommands()
    client = MlflowClient(mlflow_uri)  # not the fluent API: its active experiment is process-wide
    run = client.create_run(client.create_experiment("grid"))
    for step, value in [(2, 0.5), (1, 1.0), (3, 0.25)]:
        client.log_metric(run.info.run_id, "frac_reward_zero_std", value, step=step)
    csv = tmp_path / "a.csv"
    csv.write_text("step,frac_reward_zero_std\n1,0.5\n2,0.0\n")
    out = tmp_path / "zero_std.png"
    args = ["train", "compare", "--column", "frac_reward_zero_std", "--out", str(out), "--tracking-uri", mlflow_uri]
    done = CliRunner().invoke(app, [*args, "--run", f"coarse=mlflow:{run.info.run_id}", "--run", f"default={csv}"])
    assert done.exit_code == 0, done.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from toolrl.training.publish import run_points

    assert run_points(f"mlflow:{run.info.run_id}", "frac_reward_zero_std", mlflow_uri) == [(1, 1.0), (2, 0.5), (3, 0.25)]
    unknown = CliRunner().invoke(app, [*args, "--run", "x=mlflow:0123456789abcdef"])
    assert unknown.exit_code != 0 and "mlflow:0123456789abcdef" in str(unknown.exception)
    assert "tracking URI" in str(unknown.exception)
    no_metric = CliRunner().invoke(app, [*args[:3], "nope", *args[4:], "--run", f"x=mlflow:{run.info.run_id}"])
    assert no_metric.exit_code != 0 and "no values in column 'nope'" in str(no_metric.exception)


def test_a_disk_too_small_for_the_checkpoints_stops_the_run_before_it_starts(tmp_path, monkeypatch):
    """A full disk otherwise shows up 16 minutes into SFT as torch's `unexpected pos ... vs ...`."""
    import shutil
    from collections import namedtuple

    init = tmp_path / "base"
    init.mkdir()
    (init / "model.safetensors").write_bytes(b"\0" * 1000)
    (init / "config.json").write_text("{}")
    assert checkpoints.needed_bytes(init, 2) == 1000 * 8  # 2 checkpoints x 3 copies + final + MLflow's
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 7999, 7999))
    with pytest.raises(TrainingError, match=r"sft needs about .* GB free .* lower sft.save_total_limit"):
        checkpoints.ensure_disk_space(tmp_path / "models" / "sft", init, 2, "sft")  # not made yet: its parent is
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 8000, 8000))
    checkpoints.ensure_disk_space(tmp_path / "models" / "sft", init, 2, "sft")


def test_windows_tables_means_over_steps_side_by_side_and_explains_bad_input(tmp_path, mlflow_uri):
    """The table a reading of a run rests on: window means by step number, runs side by side, a column a
    run did not log shown as "-", from a CSV and from MLflow alike."""
    from mlflow.tracking import MlflowClient
    from typer.testing import CliRunner

    from toolrl.cli import _register_subcommands, app
    from toolrl.training.publish import window_means

    assert window_means([(1, 1.0), (2, 0.0), (3, 0.5), (5, 1.0)], 2) == {(1, 2): 0.5, (3, 3): 0.5, (5, 5): 1.0}
    _register_subcommands()
    a = tmp_path / "a.csv"
    a.write_text("step,reward,dynamic_sampling/passes\n1,0.5,1\n2,0.7,\n3,0.9,2\n")  # a column without step 2
    client = MlflowClient(mlflow_uri)
    run = client.create_run(client.create_experiment("plain"))
    for step, value in [(3, 0.3), (1, 0.1), (2, 0.2)]:
        client.log_metric(run.info.run_id, "reward", value, step=step)
    args = ["train", "windows", "--run", f"ds={a}", "--run", f"plain=mlflow:{run.info.run_id}", "--size", "2",
            "--tracking-uri", mlflow_uri, "--column", "reward", "--column", "dynamic_sampling/passes"]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    assert done.output.splitlines() == [
        "| run | steps | reward | dynamic_sampling/passes |", "|---|---|---|---|",
        "| ds | 1-2 | 0.600 | 1.000 |", "| ds | 3-3 | 0.900 | 2.000 |",
        "| plain | 1-2 | 0.150 | - |", "| plain | 3-3 | 0.300 | - |"]
    nowhere = CliRunner().invoke(app, [*args[:4], "--column", "reward", "--column", "nope"])
    assert nowhere.exit_code != 0 and "no run has values in column(s) 'nope'" in str(nowhere.exception)
    only_ds = CliRunner().invoke(app, [*args[:-4], "--column", "dynamic_sampling/passes"])
    assert only_ds.exit_code != 0 and "run 'plain'" in str(only_ds.exception)
    twice = CliRunner().invoke(app, ["train", "windows", "--run", f"x={a}", "--run", f"x={a}"])
    assert twice.exit_code != 0 and "given twice" in str(twice.exception)
