"""How a training stage starts: in this process, or as `accelerate launch` processes on GPUs.

    python -m toolrl.training.launch grpo --params params.yaml -S grpo.max_steps=10 [--fresh]

is the entry point every launcher runs (accelerate starts one per GPU). `plan()` builds the exact
commands from the stage's `launch` section (and, for GRPO in vLLM server mode, the `trl vllm-serve`
command to start first); `toolrl train <stage> --dry-run` prints them; `check()` validates what a CPU
machine can validate of a GPU setup.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from toolrl.config import ConfigError, Params, TrainCommon, load_params
from toolrl.hardware import resolve_bf16

STAGES = ("sft", "grpo", "grpo_trm")  # grpo_trm: GRPO with the TRM (toolrl.trm.grpo), the grpo section's launch


@dataclass
class LaunchPlan:
    stage: str
    train: list[str]
    env: dict[str, str] = field(default_factory=dict)
    server: list[str] | None = None  # `trl vllm-serve ...`, to start before `train` (server mode)
    server_env: dict[str, str] = field(default_factory=dict)

    @property
    def in_process(self) -> bool:
        return self.train[:2] != ["accelerate", "launch"]

    def shell(self) -> str:
        """The commands as a user would type them."""
        def line(env: dict[str, str], argv: list[str]) -> str:
            return " ".join([*(f"{k}={shlex.quote(v)}" for k, v in env.items()), *map(shlex.quote, argv)])

        lines = []
        if self.server:
            lines += ["# 1. the vLLM generation server, on its own GPUs (keep it running):",
                      line(self.server_env, self.server), "# 2. the trainer:"]
        lines.append(line(self.env, self.train))
        return "\n".join(lines)


def section(params: Params, stage: str) -> TrainCommon:
    if stage not in STAGES:
        raise ConfigError(f"unknown training stage {stage!r}: use one of {', '.join(STAGES)}")
    if stage == "grpo_trm":  # the grpo section (init, budget, launch) with grpo_trm's outputs
        from toolrl.trm.grpo import grpo_trm_section

        return grpo_trm_section(params)
    return getattr(params, stage)


def stage_args(stage: str, params_path: str | Path, overrides: list[str], fresh: bool = False) -> list[str]:
    args = [stage, "--params", str(params_path)]
    for text in overrides:
        args += ["-S", text]
    return [*args, "--fresh"] if fresh else args


def plan(stage: str, params: Params, params_path: str | Path, overrides: list[str] | None = None,
         fresh: bool = False) -> LaunchPlan:
    sec = section(params, stage)
    launch = sec.launch
    args = stage_args(stage, params_path, overrides or [], fresh)
    env = {"CUDA_VISIBLE_DEVICES": launch.cuda_visible_devices} if launch.cuda_visible_devices else {}
    if launch.accelerate_config:
        cmd = ["accelerate", "launch", "--config_file", launch.accelerate_config]
        if launch.num_processes:
            cmd += ["--num_processes", str(launch.num_processes)]
        if launch.main_process_port:
            cmd += ["--main_process_port", str(launch.main_process_port)]
        train = [*cmd, "-m", "toolrl.training.launch", *args]
    else:
        train = ["python", "-m", "toolrl.training.launch", *args]
    result = LaunchPlan(stage=stage, train=train, env=env)
    if stage != "sft" and params.grpo.vllm.enabled and params.grpo.vllm.mode == "server":
        result.server, result.server_env = _vllm_server(params)
    return result


def _vllm_server(params: Params) -> tuple[list[str], dict[str, str]]:
    from toolrl.training.grpo import init_folder_path

    v = params.grpo.vllm
    cmd = ["trl", "vllm-serve", "--model", str(init_folder_path(params)),
           "--tensor-parallel-size", str(v.tensor_parallel_size),
           "--data-parallel-size", str(v.server_data_parallel_size),
           "--host", v.server_host, "--port", str(v.server_port),
           "--gpu-memory-utilization", str(v.gpu_memory_utilization),
           "--dtype", "bfloat16" if resolve_bf16(params.grpo.bf16) else "auto"]
    if v.max_model_length:
        cmd += ["--max-model-len", str(v.max_model_length)]
    env = {"CUDA_VISIBLE_DEVICES": v.server_cuda_visible_devices} if v.server_cuda_visible_devices else {}
    return cmd, env


def check(stage: str, params: Params) -> list[str]:
    """Validate the stage's setup as far as this machine allows; returns notes (problems raise).

    Builds the TRL config object (SFTConfig / GRPOConfig), which checks batch and group sizes; on a
    machine without CUDA it is built with `use_cpu` so that bf16 settings can still be checked.
    """
    import importlib.util

    import torch

    from toolrl.training.checkpoints import OutputState

    sec = section(params, stage)
    notes: list[str] = []
    state = OutputState(output_dir=Path(sec.output_dir), resume_from=None, done=False)
    if stage == "sft":
        from trl import SFTConfig

        from toolrl.training.stage import trainer_args

        kwargs: dict[str, Any] = {**trainer_args(sec, state, stage, params.model.dtype), "max_length": params.sft.max_length,
                                  "completion_only_loss": params.sft.completion_only_loss}
        config_cls = SFTConfig
    else:
        from trl import GRPOConfig

        from toolrl.training.grpo import config_kwargs

        kwargs = config_kwargs(params, state, sec, stage)
        config_cls = GRPOConfig
    if not torch.cuda.is_available():
        kwargs["use_cpu"] = True
        notes.append(f"no CUDA here: the config was validated with use_cpu=True (bf16 {resolve_bf16(sec.bf16)})")
    kwargs["report_to"] = []
    try:
        config_cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{stage}: TRL rejects this configuration: {exc}") from None
    launch = sec.launch
    if launch.accelerate_config:
        path = Path(launch.accelerate_config)
        if not path.exists():
            raise ConfigError(f"{stage}.launch.accelerate_config: {path} not found (see infra/accelerate/, infra/deepspeed/)")
        cfg = yaml.safe_load(path.read_text()) or {}
        if cfg.get("distributed_type") == "DEEPSPEED" and importlib.util.find_spec("deepspeed") is None:
            notes.append(f"{path} uses DeepSpeed, which is not installed here: pip install -e '.[gpu]' on the GPU host")
        if cfg.get("distributed_type") == "DEEPSPEED" and sec.lora.enabled and \
                (cfg.get("deepspeed_config") or {}).get("zero_stage") == 3:
            notes.append("LoRA merging under ZeRO-3 is not supported here: use infra/deepspeed/zero2.yaml with LoRA")
    if stage != "sft" and params.grpo.vllm.enabled and importlib.util.find_spec("vllm") is None:
        notes.append("grpo.vllm.enabled but vllm is not installed here: pip install -e '.[gpu]' on the GPU host")
    return notes


def inputs(stage: str, params: Params) -> dict[str, bool]:
    """The files the stage reads and whether they exist yet (a dry run reports, it does not require)."""
    data = Path(params.data.output_dir) / "train.jsonl"
    if stage == "sft":
        model = Path(params.model.output_dir)
    else:
        from toolrl.training.grpo import init_folder_path

        model = init_folder_path(params)
    found = {str(data): data.exists(), str(model): (model / "config.json").exists()}
    if stage != "sft" and params.grpo.task == "multi_turn":  # the multi-turn cases instead of train.jsonl
        from toolrl.training.data import multi_turn_path

        del found[str(data)]
        data = multi_turn_path(params.data.output_dir, "rl")
        found[str(data)] = data.exists()
    if stage == "grpo_trm":
        trm = Path(params.trm.grpo.reward_model or params.trm.model.output_dir)
        found[str(trm)] = (trm / "trm.json").exists()
    return found


def run(stage: str, params: Params, fresh: bool = False) -> Any:
    if stage == "sft":
        from toolrl.training.sft import run_sft

        return run_sft(params, fresh=fresh)
    if stage == "grpo_trm":
        from toolrl.trm.grpo import run_grpo_trm

        return run_grpo_trm(params, fresh=fresh)
    from toolrl.training.grpo import run_grpo

    return run_grpo(params, fresh=fresh)


def _resolve(argv: list[str]) -> list[str]:
    """The launcher from this environment (`.venv/bin/accelerate`) when it is not on PATH, e.g. when
    `.venv/bin/toolrl` runs without the venv activated."""
    import shutil

    beside = Path(sys.executable).parent / argv[0]
    if shutil.which(argv[0]) is None and beside.exists():
        return [str(beside), *argv[1:]]
    return argv


def execute(stage: str, params: Params, params_path: str | Path, overrides: list[str] | None = None,
            fresh: bool = False, say: Any = print) -> Any:
    """Run the stage as its plan says: in this process, or as `accelerate launch` processes (waited
    for; their result is read back from the output folder's done file)."""
    import os
    import subprocess

    from toolrl.training.checkpoints import read_done
    from toolrl.training.data import TrainingError
    from toolrl.training.stage import TrainResult

    launch_plan = plan(stage, params, params_path, overrides, fresh)
    if launch_plan.in_process:
        return run(stage, params, fresh=fresh)
    if launch_plan.server:
        say("vLLM server mode: the trainer connects to a running server; start it first with:\n  "
            + launch_plan.shell().splitlines()[1])
    say(f"launching: {launch_plan.shell().splitlines()[-1]}")
    rc = subprocess.run(_resolve(launch_plan.train), env={**os.environ, **launch_plan.env}).returncode
    if rc != 0:
        raise TrainingError(f"{stage} training processes exited with code {rc} (their output is above); "
                            "started again, the stage resumes from its last checkpoint")
    return TrainResult(**read_done(Path(section(params, stage).output_dir)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolrl.training.launch", description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("-S", "--set", dest="overrides", action="append", default=[])
    parser.add_argument("--fresh", action="store_true", help="start over, ignoring checkpoints in output_dir")
    ns = parser.parse_args(argv)
    from toolrl.models import ModelError
    from toolrl.training.data import TrainingError

    try:
        params = load_params(ns.params, ns.overrides)
        result = run(ns.stage, params, fresh=ns.fresh)
    except (ConfigError, FileNotFoundError, TrainingError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
