"""`toolrl reward score`: every line written back with its scores; bad lines reported with their line
number, written back with `scores: null` and an error, the rest scored; exit 1 if any line was bad."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from toolrl.rewards import score
from toolrl.rewards.cli import app

GT = '<think> t </think>\n<tool_call>\n{"name": "f", "parameters": {"a": 1}}\n</tool_call>'
HALF = '<think> t </think>\n<tool_call>\n{"name": "f", "parameters": {"a": 2}}\n</tool_call>'


def write_lines(path, lines):
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))


def read_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_scores_good_lines_and_reports_bad_ones(tmp_path):
    src, dst = tmp_path / "in.jsonl", tmp_path / "out" / "scored.jsonl"
    write_lines(src, [
        {"id": 1, "completion": HALF, "ground_truth": GT},
        {"id": 2, "completion": HALF, "ground_truth": GT, "variant": "equal_max", "step": 40},
        "{not json",
        "",
        {"id": 5, "completion": HALF},
        {"id": 6, "completion": HALF, "ground_truth": GT, "variant": "nope"},
        {"id": 7, "completion": HALF, "ground_truth": GT, "step": "ten"},
        {"id": 8, "completion": HALF, "ground_truth": "<tool_call>\n{broken\n</tool_call>"},
        [1, 2],
        {"id": 10, "completion": [{"role": "assistant", "content": GT}], "ground_truth": GT},
    ])
    result = CliRunner().invoke(app, ["score", "--input", str(src), "--output", str(dst)])
    assert result.exit_code == 1
    out = read_lines(dst)
    assert len(out) == 9  # the blank line carries no record
    by_id = {r.get("id"): r for r in out}
    assert by_id[1]["scores"] == score(HALF, GT)._asdict()
    assert by_id[2]["scores"] == score(HALF, GT, variant="equal_max", step=40)._asdict()
    assert by_id[10]["scores"]["total"] == 4.0
    errors = {r.get("id", r.get("line")): r["error"] for r in out if r["scores"] is None}
    assert set(errors) == {3, 5, 6, 7, 8, 9}
    assert "not valid JSON" in errors[3] and "missing field(s) ground_truth" in errors[5]
    assert "unknown reward variant 'nope'" in errors[6] and "step must be" in errors[7]
    assert "ground truth tool call line 1 is not JSON" in errors[8] and "JSON object" in errors[9]
    for n in (3, 5, 6, 7, 8, 9):
        assert f"in.jsonl:{n}:" in result.output
    assert "scored 3 line(s)" in result.output and "6 bad line(s)" in result.output


def test_params_and_overrides_choose_the_default_variant(tmp_path):
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_lines(src, [{"completion": HALF, "ground_truth": GT}, {"completion": HALF, "ground_truth": GT,
                                                                  "variant": "default"}])
    params = tmp_path / "params.yaml"
    params.write_text("grpo:\n  reward:\n    variant: coarse\n    correctness_min: -5\n")
    result = CliRunner().invoke(app, ["score", "-i", str(src), "-o", str(dst), "--params", str(params),
                                      "-S", "grpo.reward.format_max=2"])
    assert result.exit_code == 0, result.output
    coarse, default = (r["scores"] for r in read_lines(dst))
    assert coarse == {"total": -3.0, "format": 2.0, "correctness": -5.0, "length": 0.0}
    assert default["correctness"] == pytest.approx((3 - -5) * 2 / 3 - 5)  # s = 2 of 3 in [-5, 3]
    assert default["format"] == 2.0


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "toolrl.cli", "reward", *args], capture_output=True,
                          text=True, cwd=cwd)


def test_registered_in_toolrl_command(tmp_path):
    src = tmp_path / "in.jsonl"
    write_lines(src, [{"completion": GT, "ground_truth": GT}])
    out = run("score", "--input", "in.jsonl", "--output", "out.jsonl", cwd=tmp_path)  # no params.yaml here
    assert out.returncode == 0, out.stderr
    assert read_lines(tmp_path / "out.jsonl")[0]["scores"]["total"] == 4.0
    missing = run("score", "--input", "none.jsonl", "--output", "o.jsonl", cwd=tmp_path)
    assert missing.returncode == 2 and "not found" in missing.stderr and "Traceback" not in missing.stderr
    listing = run("variants", cwd=tmp_path)
    assert listing.returncode == 0 and "dynamic_length" in listing.stdout and "schema_match" in listing.stdout
