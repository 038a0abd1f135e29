"""The `toolrl` command: help lists sub-commands, user errors are one line and exit 2."""

from __future__ import annotations

import subprocess
import sys


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "toolrl.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_help_lists_subcommands():
    out = run("--help")
    assert out.returncode == 0
    for name in ("params", "model"):
        assert name in out.stdout


def test_bad_param_is_one_line_exit_2(project_root):
    out = run("params", "check", "-S", "grpo.nonsense=1", cwd=project_root)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "grpo.nonsense: unknown key" in lines[0]


def test_missing_params_file_exit_2(tmp_path):
    out = run("params", "show", "--params", str(tmp_path / "none.yaml"))
    assert out.returncode == 2 and "not found" in out.stderr and "Traceback" not in out.stderr


def test_model_error_exit_2(tmp_path, project_root):
    out = run("model", "prepare", "-S", f"model.name={tmp_path}/missing-model",
              "-S", f"model.output_dir={tmp_path}/out", cwd=project_root)
    assert out.returncode == 2 and "does not exist" in out.stderr and "Traceback" not in out.stderr


def test_params_show_prints_overridden_value(project_root):
    out = run("params", "show", "-S", "grpo.max_steps=3", cwd=project_root)
    assert out.returncode == 0 and "max_steps: 3" in out.stdout
