"""`toolrl reward agreement`: each reward variant's GRPO advantages on logged groups, against the default's."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from toolrl.rewards.agreement import SampleTableError, advantages, compare_variants, read_groups

GT = '<think> x </think>\n<tool_call>\n{"name": "f", "parameters": {"a": 1, "b": 2}}\n</tool_call>'


def completion(name: str = "f", a: int = 1, b: int = 2) -> str:
    return f'<think> y </think>\n<tool_call>\n{{"name": "{name}", "parameters": {{"a": {a}, "b": {b}}}}}\n</tool_call>'


def group(*completions: str, step: int = 3) -> list[dict]:
    return [{"step": step, "completion": c, "ground_truth": GT} for c in completions]


def write_table(path, rows):
    columns = ["step", "user", "completion", "ground_truth", "n_calls"]
    path.write_text(json.dumps({"columns": columns, "data": [[str(r["step"]), "u", r["completion"], r["ground_truth"],
                                                             "1"] for r in rows]}))
    return path


def by_name(rows):
    return {r.variant: r for r in rows}


def test_advantages_are_grpos_group_normalisation():
    assert advantages([1.0, 1.0, 1.0, 1.0]) == [0.0] * 4  # a silent group
    adv = advantages([0.0, 0.0, 0.0, 4.0])
    assert adv[3] == pytest.approx(3 / (2 + 1e-4)) and sum(adv) == pytest.approx(0.0, abs=1e-6)  # std unbiased: 2


def test_a_rescaled_variant_gives_the_same_advantages_and_coarse_silences_partial_credit():
    # every completion well formed (format equal across the group): correctness alone sets the order, so a
    # variant that only rescales correctness (equal_max: [-1, 1] instead of [-3, 3]) trains on the same signal
    partial = group(completion(), completion(b=3), completion(a=5, b=3), completion(name="g"))
    # no completion exactly right: coarse (all or nothing) gives all four the same reward
    none_exact = group(completion(b=3), completion(a=5), completion(a=5, b=3), completion(name="g"))
    rows = by_name(compare_variants([partial, none_exact], ["equal_max", "coarse"]))
    assert rows["default"].same == 2 and rows["default"].silent == 0
    assert rows["equal_max"].same == 2 and rows["equal_max"].mean_correlation == pytest.approx(1.0)
    assert rows["coarse"].silent == 1 and rows["coarse"].same == 0
    assert rows["coarse"].both_vary == 1 and rows["coarse"].mean_correlation < 0.99  # partial credit gone


def test_schema_variants_are_refused_for_want_of_tools():
    with pytest.raises(ValueError, match="tools' schemas"):
        compare_variants([group(completion(), completion())], ["schema_match"])


def test_rows_that_are_not_one_prompts_group_are_refused(tmp_path):
    rows = group(completion(), completion()) + [{"step": 3, "completion": completion(), "ground_truth": GT + " "}] * 2
    table = write_table(tmp_path / "t.json", rows)
    assert len(read_groups([table], 2)) == 2
    with pytest.raises(SampleTableError, match="different ground truths.*num_generations"):
        read_groups([table], 4)
    with pytest.raises(SampleTableError, match="do not form groups of 3"):
        read_groups([table], 3)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SampleTableError, match="not an MLflow sample table"):
        read_groups([tmp_path / "bad.json"], 2)


def test_the_cli_prints_the_table_and_says_what_was_wrong(tmp_path):
    from toolrl.cli import UserError
    from toolrl.rewards.cli import app

    write_table(tmp_path / "grpo_step_000003.json", group(completion(), completion(b=3), completion(a=5, b=3),
                                                          completion(name="g")))
    runner = CliRunner()
    result = runner.invoke(app, ["agreement", "--samples", str(tmp_path / "grpo_step_*.json"),
                                 "--variants", "equal_max,coarse", "--group-size", "4"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "1 groups of 4 from 1 sample tables" in result.output and "equal_max" in result.output
    # without --group-size, params.yaml's grpo.num_generations (8): four rows are not a group of it
    result = runner.invoke(app, ["agreement", "--samples", str(tmp_path / "grpo_step_*.json")])
    assert isinstance(result.exception, UserError) and "do not form groups of 8" in str(result.exception)
    result = runner.invoke(app, ["agreement", "--samples", str(tmp_path / "none_*.json")])
    assert isinstance(result.exception, UserError) and "no sample table" in str(result.exception)
    result = runner.invoke(app, ["agreement", "--samples", str(tmp_path / "grpo_step_*.json"), "--variants", "nope"])
    assert isinstance(result.exception, UserError) and "unknown variant nope" in str(result.exception)
